-- marts.activity_heatmap
-- grain: source, activity_type, weekday, hour
-- weekday and hour are those of the community's local time zone.
-- activity_type: the content kind for content creation; the event_type for engagement events
-- with time_precision = 'exact'. Day-precision events (Stack Exchange votes) have no hour and
-- are left out. The full 7 x 24 grid is zero-filled for every (source, activity_type) present.
-- Documented in transforms/README.md.
-- Counted from marts.activity_timeline's 15-minute UTC buckets (the same items: live content
-- and exact-precision events): every item of a bucket has the bucket's local weekday, date and
-- hour in any time zone, so the cells are sums of bucket counts and the build reads the
-- timeline (at most 96 rows per day and activity type), never the staging rows.
with

sources as (
    -- each source's time zone (ops.sources; none, NULL or empty: 'UTC')
    select source, coalesce(nullif(timezone, ''), 'UTC') as timezone
    from ops.sources
),

activity_local as (
    -- staging holds naive UTC; timezone('UTC', ts) makes it an instant without depending on
    -- the session time zone, timezone(tz, instant) gives the local wall-clock time (DST-aware).
    select
        timeline.source,
        timeline.activity_type,
        coalesce(sources.timezone, 'UTC') as timezone,
        timezone(coalesce(sources.timezone, 'UTC'), timezone('UTC', timeline.bucket_start)) as occurred_at_local,
        timeline.events
    from marts.activity_timeline as timeline
    left join sources using (source)
),

cells as (
    select
        source,
        activity_type,
        isodow(occurred_at_local)::integer as weekday,
        hour(occurred_at_local)::integer as hour,
        sum(events)::bigint as events
    from activity_local
    group by all
),

source_span as (
    select
        source,
        timezone,
        (date_diff('day', min(occurred_at_local::date), max(occurred_at_local::date)) + 1) / 7.0
            as weeks_observed
    from activity_local
    group by source, timezone
),

activity_types as (
    select distinct source, activity_type
    from activity_local
),

weekdays as (
    select range::integer as weekday from range(1, 8)
),

hours as (
    select range::integer as hour from range(0, 24)
),

grid as (
    select activity_types.source, activity_types.activity_type, weekdays.weekday, hours.hour
    from activity_types
    cross join weekdays
    cross join hours
),

final as (
    select
        grid.source,
        grid.activity_type,
        grid.weekday,
        ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][grid.weekday] as weekday_name,
        grid.hour,
        source_span.timezone,
        coalesce(cells.events, 0) as events,
        source_span.weeks_observed,
        coalesce(cells.events, 0) / source_span.weeks_observed as mean_per_week
    from grid
    inner join source_span using (source)
    left join cells using (source, activity_type, weekday, hour)
    order by grid.source, grid.activity_type, grid.weekday, grid.hour
)

select * from final
