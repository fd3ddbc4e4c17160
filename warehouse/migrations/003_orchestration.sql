-- 003_orchestration: watermarks per source stream, and freshness/volume history.
-- A watermark is the high-water mark of what has been loaded from a stream: the largest
-- change timestamp (with the natural key as tie-breaker), advanced only by successful loads.
create table if not exists ops.watermarks (
    source varchar not null,
    stream varchar not null,
    watermark_column varchar not null,   -- e.g. coalesce(edited_at, created_at)
    watermark_value timestamp not null,  -- naive UTC
    watermark_key varchar,               -- natural key of the row at the watermark (tie-breaker)
    run_id varchar not null,
    updated_at timestamp not null,
    primary key (source, stream)
);
