-- marts.activity_timeline
-- grain: source, activity_type, bucket_start
-- bucket_start: a 15-minute UTC bucket; one row per bucket with at least one
-- hour-precise item (content at created_at, engagement events with time_precision = 'exact').
-- Day-precision events are excluded, as in marts.activity_heatmap. 15 minutes because every
-- UTC offset in use is a multiple of 15 minutes: a bucket's local weekday, date and hour are
-- those of every item in it in any time zone, so a dashboard can re-bucket the timeline into a
-- weekday x hour heatmap for any zone and any date range. Documented in transforms/README.md.
-- incremental: days -- a bucket's count reads only its own items: the buckets of the UTC days
-- in pulse_scope_days are rebuilt.
with

content_activity as (
    select source, kind as activity_type, created_at as occurred_at_utc
    from staging.live_content
    where (source, created_at::date) in (select source, day from pulse_scope_days)  -- @partition
),

exact_events as (
    select source, event_type as activity_type, occurred_at as occurred_at_utc
    from staging.engagement_events
    where time_precision = 'exact'
        and (source, occurred_at::date) in (select source, day from pulse_scope_days)  -- @partition
),

activity as (
    select * from content_activity
    union all
    select * from exact_events
),

final as (
    select
        source,
        activity_type,
        time_bucket(interval 15 minute, occurred_at_utc) as bucket_start,
        count(*) as events
    from activity
    group by all
    order by source, activity_type, bucket_start
)

select * from final

-- @delete
delete from marts.activity_timeline
where (source, bucket_start::date) in (select source, day from pulse_scope_days);
