-- marts.activity_heatmap
-- grain: source, activity_type, weekday, hour
-- weekday and hour are those of the community's local time zone.
-- activity_type: the content kind for content creation; the event_type for engagement events
-- with time_precision = 'exact'. Day-precision events (Stack Exchange votes) have no hour and
-- are left out. The full 7 x 24 grid is zero-filled for every (source, activity_type) present.
-- Documented in transforms/README.md.
with

sources as (
    -- A source with content or engagement events, and its time zone.
    select source, timezone
    from staging.community_sources
    where in_live_content or in_engagement_events
),

content_activity as (
    select source, kind as activity_type, created_at as occurred_at_utc
    from staging.live_content
),

exact_events as (
    select source, event_type as activity_type, occurred_at as occurred_at_utc
    from staging.engagement_events
    where time_precision = 'exact'
),

activity as (
    select * from content_activity
    union all
    select * from exact_events
),

activity_local as (
    -- staging holds naive UTC; timezone('UTC', ts) makes it an instant without depending on
    -- the session time zone, timezone(tz, instant) gives the local wall-clock time (DST-aware).
    select
        activity.source,
        activity.activity_type,
        sources.timezone,
        timezone(sources.timezone, timezone('UTC', activity.occurred_at_utc)) as occurred_at_local
    from activity
    inner join sources using (source)
),

cells as (
    select
        source,
        activity_type,
        isodow(occurred_at_local)::integer as weekday,
        hour(occurred_at_local)::integer as hour,
        count(*) as events
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
