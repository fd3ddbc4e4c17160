-- 005_postgres_source: watermarks in a live source's own terms (a PostgreSQL replica's change
-- column and primary key, per mapping query), next to ops.watermarks' canonical ones.
-- The key is stored as JSON text so an integer key stays an integer (keyset order).
create table if not exists ops.source_watermarks (
    source varchar not null,             -- e.g. discourse:forum
    query varchar not null,              -- the mapping file's query name, e.g. posts
    watermark_column varchar not null,   -- the query's output column, e.g. updated_at
    key_column varchar not null,         -- the tie-breaker column, e.g. content_id
    watermark_value timestamp not null,  -- naive UTC: the last change read and loaded
    watermark_key varchar not null,      -- JSON of the key at the watermark
    run_id varchar not null,
    updated_at timestamp not null,
    primary key (source, query)
);
-- What an extract reached, per run: advanced into ops.source_watermarks by the load
-- transaction (never at extract), so a failed run never moves a watermark.
create table if not exists ops.source_watermarks_pending (
    run_id varchar not null,
    source varchar not null,
    query varchar not null,
    watermark_column varchar not null,
    key_column varchar not null,
    watermark_value timestamp not null,
    watermark_key varchar not null,
    primary key (run_id, source, query)
);
