-- 006_event_exports: the ledger of event export files, so each file is loaded once
-- (warehouse/sources/events.py). A file is identified by its bytes (sha256), per source: the
-- same bytes under another name are a duplicate file and are skipped.
create table if not exists ops.loaded_files (
    source varchar not null,           -- the canonical source its events were loaded into
    sha256 varchar not null,           -- hex digest of the file's bytes
    path varchar not null,             -- where it was first read
    size_bytes bigint not null,
    mtime timestamp not null,          -- modification time (arrival), naive UTC
    format varchar not null,           -- jsonl | jsonl.gz | parquet
    rows_read bigint not null,         -- records (lines / rows) read
    rows_loaded bigint not null,       -- events upserted into staging (inserted, updated or unchanged)
    rows_skipped bigint not null,      -- duplicate event_id in batch (a later copy won)
    rows_quarantined bigint not null,  -- by the connector or as dangling references
    run_id varchar not null,
    loaded_at timestamp not null,      -- naive UTC, the load transaction's time
    primary key (source, sha256)
);

-- Landing for the file list of an event-export run, keyed by run_id: written with the batch,
-- copied into ops.loaded_files in the load transaction, then cleared.
create table if not exists raw.event_files (
    run_id varchar not null,
    source varchar not null, sha256 varchar not null, path varchar not null, size_bytes bigint not null,
    mtime timestamp not null, format varchar not null, rows_read bigint not null, rows_emitted bigint not null,
    rows_skipped bigint not null, rows_quarantined bigint not null
);
-- Which file each landed event came from (to count per file the events validate quarantines).
create table if not exists raw.event_file_events (
    run_id varchar not null, source varchar not null, sha256 varchar not null, event_id varchar not null
);
