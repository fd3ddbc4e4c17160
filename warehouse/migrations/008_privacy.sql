-- 008_privacy: data-subject requests (export, erasure), tombstones and the privacy keys.
-- See warehouse/privacy.py and SECURITY.md. None of these tables is published to the serving
-- snapshot (warehouse.publish.SERVING_TABLES does not list them).

-- Secrets generated inside the warehouse, once: the salt of the tombstone hashes and the default
-- key of the pseudonyms (PULSE_PSEUDONYM_KEY overrides the latter). 384 random bits each, from
-- three version-4 UUIDs (122 random bits apiece). Never published, never exported.
create table if not exists ops.privacy_keys (
    name varchar primary key,          -- tombstone_salt | pseudonym_key
    key_hex varchar not null,
    created_at timestamp not null
);
insert into ops.privacy_keys
select 'tombstone_salt',
       replace(gen_random_uuid()::varchar || gen_random_uuid()::varchar || gen_random_uuid()::varchar, '-', ''),
       current_timestamp::timestamp
where not exists (select 1 from ops.privacy_keys where name = 'tombstone_salt');
insert into ops.privacy_keys
select 'pseudonym_key',
       replace(gen_random_uuid()::varchar || gen_random_uuid()::varchar || gen_random_uuid()::varchar, '-', ''),
       current_timestamp::timestamp
where not exists (select 1 from ops.privacy_keys where name = 'pseudonym_key');

-- One row per erased user: a later load from the source drops or redacts their records again.
-- Holds no identifier: user_id_hash = HMAC-SHA256(tombstone_salt, source || 0x1f || user_id);
-- alias = the random stand-in that replaced their id in staging (unlinkable to the id).
create table if not exists ops.tombstones (
    source varchar not null,
    user_id_hash varchar not null,
    requested_at timestamp not null,   -- naive UTC
    request_id varchar not null,
    erasure_mode varchar not null,     -- delete | redact (applied again at every later load)
    alias varchar not null,            -- e.g. erased_3fa29c1d0b7e
    primary key (source, user_id_hash)
);

-- The request log: what was asked, when, and how many rows each step touched; never the data.
create table if not exists ops.privacy_requests (
    request_id varchar primary key,
    kind varchar not null,             -- export | forget | retention
    source varchar not null,
    requested_at timestamp not null,
    finished_at timestamp,
    status varchar not null,           -- running | done | failed
    counts_json varchar                -- {"staging.content": 137, ...}
);

-- Pseudonyms for marts that do not need identity: HMAC-SHA256 (RFC 2104) keyed with
-- ops.privacy_keys.pseudonym_key, of source || 0x1f || user_id, as 'u_' + the first 12 hex
-- digits (48 bits). warehouse.privacy.pseudonym computes the same value in Python (tested).
-- hmac_pad: the 64-byte SHA-256 block key (key zero-padded) XOR the pad byte (0x36 / 0x5c).
create or replace macro ops.hmac_pad(key_hex, pad) as
    unhex(array_to_string(list_transform(range(64), lambda i:
        printf('%02x', xor(('0x' || substr(rpad(key_hex, 128, '0'), i * 2 + 1, 2))::integer, pad))), ''));
create or replace macro ops.pseudonym(src, uid) as
    case when uid is null then null else 'u_' || left(sha256(
        (select ops.hmac_pad(key_hex, 92) from ops.privacy_keys where name = 'pseudonym_key')
        || unhex(sha256(
            (select ops.hmac_pad(key_hex, 54) from ops.privacy_keys where name = 'pseudonym_key')
            || encode(src || chr(31) || uid)))), 12) end;
