-- 001_init: schemas and the canonical tables (see docs/ARCHITECTURE.md, "Canonical data model").
-- All timestamps are naive TIMESTAMP holding UTC.
create schema if not exists raw;
create schema if not exists staging;
create schema if not exists marts;
create schema if not exists moderation;
create schema if not exists quality;
create schema if not exists ops;

-- Landing zone: one batch per run, keyed by run_id; cleared when the run finishes.
create table if not exists raw.users (
    run_id varchar not null,
    source varchar, user_id varchar, display_name varchar, created_at timestamp, reputation bigint
);
create table if not exists raw.content (
    run_id varchar not null,
    source varchar, content_id varchar, kind varchar, thread_id varchar, parent_id varchar,
    author_id varchar, created_at timestamp, edited_at timestamp, title varchar, body_text varchar,
    tags varchar[], score bigint, view_count bigint, content_hash varchar
);
create table if not exists raw.engagement_events (
    run_id varchar not null,
    source varchar, event_id varchar, event_type varchar, content_id varchar, user_id varchar,
    occurred_at timestamp, time_precision varchar
);
-- Records that could not be mapped or loaded, with the reason; never deleted by the pipeline.
create table if not exists raw.quarantine (
    source varchar not null,
    stream varchar not null,          -- users | content | engagement_events
    record_key varchar,               -- the source's id when one could be read
    reason varchar not null,          -- machine-readable code, e.g. missing_id, bad_timestamp
    detail varchar,                   -- human-readable explanation
    payload varchar,                  -- the raw record as read
    fingerprint varchar not null,     -- sha256 of payload: the natural key with source, stream, reason
    first_run_id varchar not null,
    primary key (source, stream, fingerprint, reason)
);

create table if not exists staging.users (
    source varchar not null, user_id varchar not null, display_name varchar,
    created_at timestamp, reputation bigint,
    primary key (source, user_id)
);
create table if not exists staging.content (
    source varchar not null, content_id varchar not null, kind varchar not null,
    thread_id varchar, parent_id varchar, author_id varchar,
    created_at timestamp not null, edited_at timestamp, title varchar, body_text varchar,
    tags varchar[], score bigint, view_count bigint, content_hash varchar not null,
    primary key (source, content_id)
);
create table if not exists staging.engagement_events (
    source varchar not null, event_id varchar not null, event_type varchar not null,
    content_id varchar not null, user_id varchar, occurred_at timestamp not null,
    time_precision varchar not null,   -- 'exact' or 'day' (Stack Exchange votes)
    primary key (source, event_id)
);

-- One row per (content_hash, model_id): a text is scored once per model.
create table if not exists moderation.scores (
    content_hash varchar not null, model_id varchar not null, model_version varchar not null,
    backend varchar not null,          -- detoxify | lexical
    is_fallback boolean not null,      -- true when `auto` fell back to the lexical model
    toxicity double, severe_toxicity double, obscene double, threat double, insult double,
    identity_attack double, sexual_explicit double,
    scored_at timestamp not null,
    primary key (content_hash, model_id)
);
-- Current flags, rebuilt each run from scores and the thresholds in force.
create table if not exists moderation.flags (
    source varchar not null, content_id varchar not null, content_hash varchar not null,
    model_id varchar not null, flagged_labels varchar[] not null, max_label varchar not null,
    max_score double not null, severity double not null, hold boolean not null,
    thresholds_json varchar not null,
    primary key (source, content_id)
);

create table if not exists quality.validation_results (
    run_id varchar not null, suite varchar not null, expectation varchar not null,
    column_name varchar not null default '', table_name varchar not null, success boolean not null, critical boolean not null,
    unexpected_count bigint, element_count bigint, details varchar, validated_at timestamp not null,
    primary key (run_id, suite, table_name, expectation, column_name)
);

create table if not exists ops.runs (
    run_id varchar primary key, source varchar not null, interval_start timestamp,
    interval_end timestamp, started_at timestamp not null, finished_at timestamp,
    status varchar not null,           -- running | success | failed
    error varchar, trigger varchar,    -- cli | airflow
    scorer_model_id varchar, scorer_is_fallback boolean, scorer_note varchar
);
-- Per run and stream: read = loaded (inserted + updated + unchanged) + skipped + quarantined.
create table if not exists ops.stream_counts (
    run_id varchar not null, source varchar not null, stream varchar not null,
    read bigint not null, skipped bigint not null, quarantined bigint not null,
    inserted bigint, updated bigint, unchanged bigint, skip_rules varchar,
    primary key (run_id, stream)
);
create table if not exists ops.step_log (
    run_id varchar not null, step varchar not null, started_at timestamp not null,
    elapsed_s double not null, rows bigint, detail varchar,
    primary key (run_id, step)
);
-- Facts about each source: is it synthetic (demo), its timezone, when it was last loaded.
create table if not exists ops.sources (
    source varchar primary key, synthetic boolean not null, timezone varchar, description varchar
);
