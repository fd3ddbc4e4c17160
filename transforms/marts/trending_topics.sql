-- marts.trending_topics
-- grain: source, period, period_start, topic
-- period is 'day' or 'week'; one row per topic with
-- volume > 0 in that period. Days are local dates; weeks start on the local Monday.
-- Topics come from marts.thread_topics (tags, or YAKE keyphrases for sources without tags).
-- An item counts toward a topic when its thread's root carries it: answers, comments and
-- replies inherit their thread's topics, and their own tags are ignored.
-- Baseline: the trailing 28 days (day) or 4 weeks (week), zero periods included, never before
-- the source's first period (whose own baseline is empty and taken as 0). Computed from the
-- sparse rows with RANGE window frames over a period index (sum and sum of squares), so no
-- dense topic x period grid is built.
-- z_score = (volume - baseline_mean) / sqrt(baseline_std^2 + baseline_mean + 1)
-- (a Poisson-smoothed z-score), growth = (volume + 1) / (baseline_mean + 1).
-- hot = large volume now (top 10 of the period by volume); rising = z >= 2 against a full
-- baseline; emerging = rising from below the support level (new growth, not always big).
-- Rationale and sources in transforms/README.md. Parameter: $min_support (integer >= 1).
-- incremental: days -- a period's rows read its items, their threads' topics and the
-- baseline window before it: the periods of trending_rebuilt_periods (see @scope: each changed
-- day and the 28 days after it, each changed week and the 4 weeks after it) are rebuilt from
-- the items of those periods and of their baseline windows.
with

sources as (
    -- each source's time zone from ops.sources (no row, NULL or empty: 'UTC'; joined with a left
    -- join): the small table, not staging.community_sources, whose stream flags scan every row
    select source, coalesce(nullif(timezone, ''), 'UTC') as timezone
    from ops.sources
),

all_items as (
    select
        content.source,
        content.content_id,
        coalesce(content.thread_id, content.content_id) as root_id,
        timezone(coalesce(sources.timezone, 'UTC'), timezone('UTC', content.created_at))::date as day
    from staging.live_content as content
    left join sources using (source)
    -- a cheap UTC bound before the time zone conversion: the earliest day read (see read_days), less 3
    where content.created_at >= (select min(period_start) - 31 from trending_rebuilt_periods)  -- @partition
),

source_span as (
    -- each source's first and last local day of live content, from the build's extents
    -- (pulse_extents: transforms.incremental.compute_extents), not from every row
    select
        extents.source,
        timezone(coalesce(sources.timezone, 'UTC'), timezone('UTC', extents.first_at))::date as first_day,
        timezone(coalesce(sources.timezone, 'UTC'), timezone('UTC', extents.last_at))::date as last_day,
        date_trunc('week', timezone(coalesce(sources.timezone, 'UTC'), timezone('UTC', extents.first_at)))::date
            as first_week
    from pulse_extents as extents
    left join sources using (source)
    where extents.stream = 'live_content'
),

read_days as (
    -- a rebuilt day and the 28 before it; every day of a rebuilt week and of the 4 weeks before it
    select distinct periods.source, (periods.period_start - offsets.k)::date as day
    from trending_rebuilt_periods as periods
    cross join (select unnest(range(-6, 29))::integer as k) as offsets
    where periods.period = 'week' or offsets.k >= 0
),

items as (
    select * from all_items
    where (source, day) in (select source, day from read_days)  -- @partition
),

item_periods as (
    select source, content_id, root_id, 'day' as period, day as period_start from items
    union all
    select source, content_id, root_id, 'week' as period, date_trunc('week', day)::date as period_start
    from items
),

item_topics as (
    select
        item_periods.source,
        item_periods.period,
        item_periods.period_start,
        thread_topics.topic,
        thread_topics.topic_origin,
        item_periods.content_id,
        item_periods.root_id
    from item_periods
    inner join marts.thread_topics as thread_topics using (source, root_id)
),

volumes as (
    select
        item_topics.source,
        item_topics.period,
        item_topics.period_start,
        item_topics.topic,
        min(item_topics.topic_origin) as topic_origin,
        count(*) as volume,
        case item_topics.period
            when 'day' then date_diff('day', any_value(source_span.first_day), item_topics.period_start)
            else date_diff('day', any_value(source_span.first_week), item_topics.period_start) // 7
        end as period_index,
        case item_topics.period when 'day' then 28 else 4 end as window_periods
    from item_topics
    inner join source_span using (source)
    group by item_topics.source, item_topics.period, item_topics.period_start, item_topics.topic
),

with_sums as (
    select
        *,
        least(window_periods, period_index) as baseline_periods,
        case period
            when 'day' then coalesce(sum(volume) over trailing_28, 0)
            else coalesce(sum(volume) over trailing_4, 0)
        end as baseline_sum,
        case period
            when 'day' then coalesce(sum(volume * volume) over trailing_28, 0)
            else coalesce(sum(volume * volume) over trailing_4, 0)
        end as baseline_sum_sq
    from volumes
    window
        trailing_28 as (
            partition by source, period, topic order by period_index range between 28 preceding and 1 preceding
        ),
        trailing_4 as (
            partition by source, period, topic order by period_index range between 4 preceding and 1 preceding
        )
),

with_baseline as (
    select
        *,
        case when baseline_periods > 0 then baseline_sum / baseline_periods else 0.0 end as baseline_mean,
        case
            when baseline_periods > 0
                then sqrt(greatest(
                    baseline_sum_sq / baseline_periods - (baseline_sum / baseline_periods) ^ 2, 0.0
                ))
            else 0.0
        end as baseline_std
    from with_sums
),

scored as (
    select
        *,
        (volume - baseline_mean) / sqrt(baseline_std * baseline_std + baseline_mean + 1) as z_score,
        (volume + 1) / (baseline_mean + 1) as growth,
        row_number() over (
            partition by source, period, period_start order by volume desc, topic
        ) as volume_rank
    from with_baseline
),

ranked as (
    select
        source,
        period,
        period_start,
        topic,
        row_number() over (
            partition by source, period, period_start order by z_score desc, volume desc, topic
        ) as rank
    from scored
    where volume >= $min_support
),

roots as (
    select source, content_id as root_id, score as root_score, title as root_title
    from staging.live_content
    where coalesce(thread_id, content_id) = content_id
),

example_roots as (
    select
        source,
        period,
        period_start,
        topic,
        root_id,
        root_title,
        row_number() over (
            partition by source, period, period_start, topic order by root_score desc nulls last, root_id
        ) as example_order
    from (
        select distinct item_topics.source, item_topics.period, item_topics.period_start, item_topics.topic,
            item_topics.root_id, roots.root_score, roots.root_title
        from item_topics
        inner join roots using (source, root_id)
    )
),

examples as (
    select
        source,
        period,
        period_start,
        topic,
        list(root_id order by example_order) as example_content_ids,
        list(coalesce(root_title, '') order by example_order) as example_titles
    from example_roots
    where example_order <= 3
    group by source, period, period_start, topic
),

final as (
    select
        scored.source,
        scored.period,
        scored.period_start,
        scored.period_start + case scored.period when 'day' then 0 else 6 end as period_end,
        date_trunc('week', scored.period_start)::date as week_start,
        scored.topic,
        scored.topic_origin,
        scored.volume,
        scored.baseline_periods,
        scored.baseline_mean,
        scored.baseline_std,
        scored.z_score,
        scored.growth,
        scored.volume_rank,
        scored.period_start < source_span.first_day
            or scored.period_start + case scored.period when 'day' then 0 else 6 end > source_span.last_day
            as is_partial,
        scored.volume >= $min_support and scored.volume_rank <= 10 as is_hot,
        scored.baseline_periods = scored.window_periods and scored.z_score >= 2
            and scored.volume >= $min_support as is_rising,
        scored.baseline_periods = scored.window_periods and scored.z_score >= 2
            and scored.volume >= $min_support and scored.baseline_mean < $min_support as is_emerging,
        ranked.rank,
        examples.example_content_ids,
        examples.example_titles
    from scored
    inner join source_span using (source)
    left join ranked using (source, period, period_start, topic)
    left join examples using (source, period, period_start, topic)
    where (scored.source, scored.period, scored.period_start) in (select source, period, period_start from trending_rebuilt_periods)  -- @partition
    order by scored.source, scored.period, scored.period_start, ranked.rank nulls last, scored.topic
)

select * from final

-- @scope: the periods this build writes
create or replace temp table trending_rebuilt_periods as
with
changed_days as (
    -- the changed days, and every day of a thread whose root changed (its topics, title, score)
    select source, day from pulse_scope_days
    union
    select content.source, timezone(coalesce(nullif(sources.timezone, ''), 'UTC'), timezone('UTC', content.created_at))::date
    from staging.live_content as content
    left join ops.sources as sources using (source)
    where (content.source, coalesce(content.thread_id, content.content_id)) in (select source, root_id from pulse_scope_roots)  -- @partition
)
select distinct source, 'day' as period, (day + offsets.k)::date as period_start
from changed_days
cross join (select unnest(range(0, 29))::integer as k) as offsets
union
select distinct source, 'week' as period, (date_trunc('week', day) + to_weeks(offsets.k))::date as period_start
from changed_days
cross join (select unnest(range(0, 5))::integer as k) as offsets;

-- @delete
delete from marts.trending_topics
where (source, period, period_start) in (select source, period, period_start from trending_rebuilt_periods);
