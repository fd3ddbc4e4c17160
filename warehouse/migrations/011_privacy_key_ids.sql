-- 011_privacy_key_ids (issue 14): the privacy keys leave the warehouse; it keeps only their ids.
-- Python half first (warehouse.privacy_keys.move_legacy_keys, run by warehouse.db.migrate in the
-- same transaction): migration 008's tombstone salt, when tombstones need it, is moved to the key
-- file and its id left in the temporary table _legacy_key_ids. warehouse.db.open_warehouse then
-- compacts the file so the old keys' bytes leave it. See warehouse/privacy_keys.py, SECURITY.md.

-- Pseudonyms keyed with the session's key (warehouse.privacy_keys.install: SET VARIABLE, never
-- stored); a session without it fails loudly instead of pseudonymising with nothing.
create or replace macro ops.pseudonym(src, uid) as
    case when uid is null then null else 'u_' || left(sha256(
        ops.hmac_pad(coalesce(getvariable('pulse_pseudonym_key'),
            error('privacy key not loaded in this session (warehouse.db.migrate loads it; SECURITY.md "Privacy keys")')), 92)
        || unhex(sha256(
            ops.hmac_pad(getvariable('pulse_pseudonym_key'), 54)
            || encode(src || chr(31) || uid)))), 12) end;

-- Tombstones name the key their hash was made with (a retired key stays in the ring while tombstones
-- need it: an HMAC of an id cannot be re-keyed without the id).
alter table ops.tombstones add column if not exists key_id varchar;
update ops.tombstones set key_id = (select min(key_id) from _legacy_key_ids) where key_id is null;

-- Key ids only: 16 hex digits of HKDF-SHA256(key, info 'community-pulse/key-id/v1'); never a key.
-- ops.privacy_keys (migration 008: the keys themselves) is dropped.
drop table if exists ops.privacy_keys;
create table ops.privacy_key_ids (
    key_id varchar primary key,
    status varchar not null,           -- current | retired
    created_at timestamp not null,     -- naive UTC: when the warehouse first used it
    retired_at timestamp
);
insert into ops.privacy_key_ids select key_id, 'retired', current_timestamp::timestamp, current_timestamp::timestamp
from _legacy_key_ids;
drop table _legacy_key_ids;
