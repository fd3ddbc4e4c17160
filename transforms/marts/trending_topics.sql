-- marts.trending_topics
-- Grain: source x week_start (local Monday) x topic (tag), one row per tag with volume > 0.
-- An item counts toward a tag when its thread's root item (content_id = the item's thread_id;
-- an item without thread_id is its own root) carries the tag: answers, comments and replies
-- inherit their thread's tags, and their own tags are ignored.
-- Baseline: the trailing 4 weeks, zero weeks included, never before the source's first week
-- (whose own baseline is therefore empty and taken as 0).
-- z_score = (volume - baseline_mean) / sqrt(baseline_std^2 + baseline_mean + 1)
-- (a Poisson-smoothed z-score; rationale and source in transforms/README.md).
-- Parameter: $min_support (integer >= 1), bound by the runner.
with

sources as (
    select
        seen.source,
        coalesce(nullif(ops_sources.timezone, ''), 'UTC') as timezone
    from (select distinct source from staging.content) as seen
    left join ops.sources as ops_sources using (source)
),

items as (
    select
        content.source,
        content.content_id,
        coalesce(content.thread_id, content.content_id) as root_id,
        date_trunc(
            'week', timezone(sources.timezone, timezone('UTC', content.created_at))
        )::date as week_start
    from staging.content as content
    inner join sources using (source)
),

roots as (
    select
        source,
        content_id as root_id,
        score as root_score,
        list_distinct(tags) as tags
    from staging.content
    where coalesce(thread_id, content_id) = content_id
        and len(tags) > 0
),

item_topics as (
    select source, week_start, topic, content_id, root_id, root_score
    from (
        select
            items.source,
            items.week_start,
            unnest(roots.tags) as topic,
            items.content_id,
            items.root_id,
            roots.root_score
        from items
        inner join roots using (source, root_id)
    )
    where topic <> ''
),

weekly_volume as (
    select source, week_start, topic, count(*) as volume
    from item_topics
    group by source, week_start, topic
),

source_weeks as (
    select source, min(week_start) as first_week, max(week_start) as last_week
    from items
    group by source
),

week_grid as (
    select
        source,
        unnest(generate_series(first_week, last_week, interval 7 day))::date as week_start
    from source_weeks
),

topics as (
    select distinct source, topic
    from weekly_volume
),

series as (
    -- dense weekly series per topic from the source's first week: weeks without the topic are 0
    select
        week_grid.source,
        week_grid.week_start,
        topics.topic,
        coalesce(weekly_volume.volume, 0) as volume
    from week_grid
    inner join topics using (source)
    left join weekly_volume using (source, week_start, topic)
),

with_baseline as (
    select
        source,
        week_start,
        topic,
        volume,
        count(*) over trailing_4_weeks as baseline_weeks,
        -- the source's first week has an empty window: nothing was said before the community
        -- existed, so its expected volume is 0 (every topic that week is new)
        coalesce(avg(volume) over trailing_4_weeks, 0) as baseline_mean,
        coalesce(stddev_pop(volume) over trailing_4_weeks, 0) as baseline_std
    from series
    window trailing_4_weeks as (
        partition by source, topic order by week_start rows between 4 preceding and 1 preceding
    )
),

scored as (
    select
        *,
        (volume - baseline_mean)
            / sqrt(baseline_std * baseline_std + baseline_mean + 1) as z_score
    from with_baseline
    where volume > 0
),

ranked as (
    select
        source,
        week_start,
        topic,
        row_number() over (
            partition by source, week_start order by z_score desc, volume desc, topic
        ) as rank
    from scored
    where volume >= $min_support
),

example_roots as (
    select
        source,
        week_start,
        topic,
        root_id,
        row_number() over (
            partition by source, week_start, topic order by root_score desc nulls last, root_id
        ) as example_order
    from (select distinct source, week_start, topic, root_id, root_score from item_topics)
),

examples as (
    select
        source,
        week_start,
        topic,
        list(root_id order by example_order) as example_content_ids
    from example_roots
    where example_order <= 3
    group by source, week_start, topic
),

final as (
    select
        scored.source,
        scored.week_start,
        scored.topic,
        scored.volume,
        scored.baseline_weeks,
        scored.baseline_mean,
        scored.baseline_std,
        scored.z_score,
        -- flags need a full 4-week baseline: a community's first weeks are ranked, never flagged
        scored.baseline_weeks = 4 and scored.baseline_mean < 1 and scored.volume >= $min_support as is_emerging,
        scored.baseline_weeks = 4 and scored.z_score >= 2 and scored.volume >= $min_support as is_trending,
        ranked.rank,
        examples.example_content_ids
    from scored
    left join ranked using (source, week_start, topic)
    left join examples using (source, week_start, topic)
    order by scored.source, scored.week_start, ranked.rank nulls last, scored.topic
)

select * from final
