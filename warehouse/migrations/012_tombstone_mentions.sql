-- 012_tombstone_mentions: an erased member's @-mention handles, keyed like the tombstone itself, so a
-- later load that re-reads other members' posts mentioning them replaces the handle again
-- (warehouse.privacy.replace_erased_mentions). Each entry is '<length>:<HMAC-SHA256 hex>' of one
-- lower-cased handle; mention_handle is the pseudonym the mentions become (already in the marts).
alter table ops.tombstones add column if not exists mention_hashes varchar[];
alter table ops.tombstones add column if not exists mention_handle varchar;
