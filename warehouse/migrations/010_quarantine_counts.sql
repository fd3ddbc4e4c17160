-- Bounded quarantine (issue 14): every quarantined record is counted here, per run, source,
-- stream and reason; raw.quarantine keeps the payloads of the first few per reason and file
-- only (PULSE_QUARANTINE_SAMPLE_PER_REASON). `records` adds up, per run and stream, to
-- ops.stream_counts.quarantined; `stored` is how many of them the connector kept a payload for
-- (raw.quarantine may hold fewer: a payload seen in an earlier run is stored once).
create table if not exists raw.quarantine_counts (
    run_id varchar not null,
    source varchar not null,
    stream varchar not null,
    reason varchar not null,
    records bigint not null,
    stored bigint not null,
    primary key (run_id, source, stream, reason)
);
-- Warehouses from before: their quarantine held every record, so its rows are the counts.
insert into raw.quarantine_counts
select first_run_id, source, stream, reason, count(*), count(*) from raw.quarantine group by all
on conflict do nothing;
