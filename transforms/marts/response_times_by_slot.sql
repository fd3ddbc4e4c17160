-- marts.response_times_by_slot
-- grain: source, weekday, hour
-- weekday and hour of the thread roots' local posting time: the full 7 x 24 grid
-- for every source with at least one thread root, zero-filled. Summarises
-- marts.response_times (built before this mart): how many threads were started in the slot,
-- how many were never answered by another member, and the median and 90th percentile of the
-- hours to the first answer, first comment and first response (continuous quantiles over the
-- threads that got one; never-answered threads are not in those quantiles).
-- Documented in transforms/README.md.
with

threads as (
    select * from marts.response_times
),

sources as (
    select source, any_value(timezone) as timezone
    from threads
    group by source
),

weekdays as (
    select range::integer as weekday from range(1, 8)
),

hours as (
    select range::integer as hour from range(0, 24)
),

grid as (
    select sources.source, sources.timezone, weekdays.weekday, hours.hour
    from sources
    cross join weekdays
    cross join hours
),

cells as (
    select
        source,
        weekday,
        hour,
        count(*) as threads,
        count(*) filter (where is_answered) as answered,
        count(*) filter (where not is_answered) as never_answered,
        quantile_cont(hours_to_first_answer, 0.5) as median_hours_to_first_answer,
        quantile_cont(hours_to_first_answer, 0.9) as p90_hours_to_first_answer,
        quantile_cont(hours_to_first_comment, 0.5) as median_hours_to_first_comment,
        quantile_cont(hours_to_first_comment, 0.9) as p90_hours_to_first_comment,
        quantile_cont(hours_to_first_response, 0.5) as median_hours_to_first_response,
        quantile_cont(hours_to_first_response, 0.9) as p90_hours_to_first_response
    from threads
    group by source, weekday, hour
),

final as (
    select
        grid.source,
        grid.weekday,
        ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][grid.weekday] as weekday_name,
        grid.hour,
        grid.timezone,
        coalesce(cells.threads, 0) as threads,
        coalesce(cells.answered, 0) as answered,
        coalesce(cells.never_answered, 0) as never_answered,
        case when cells.threads > 0 then cells.never_answered / cells.threads end as never_answered_share,
        cells.median_hours_to_first_answer,
        cells.p90_hours_to_first_answer,
        cells.median_hours_to_first_comment,
        cells.p90_hours_to_first_comment,
        cells.median_hours_to_first_response,
        cells.p90_hours_to_first_response
    from grid
    left join cells using (source, weekday, hour)
    order by grid.source, grid.weekday, grid.hour
)

select * from final
