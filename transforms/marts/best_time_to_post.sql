-- marts.best_time_to_post
-- grain: source, weekday, hour
-- weekday and hour of the local posting time: the full 7 x 24 grid for every
-- source with at least one thread root, zero-filled. For the thread roots posted in the slot
-- whose response window is complete (marts.response_times.window_complete: the whole
-- $window_days-day window lies before the data's end), the expected engagement per new post:
-- answers + comments by other members + hour-precise votes on the root within the window
-- (Stack Exchange votes carry only a date and are left out), with a 95% confidence interval
-- for the mean (normal approximation, mean +- 1.96 * sd / sqrt(n)), the share of posts that got
-- a response within the window with its Wilson score lower bound (Wilson 1927), and the median
-- hours to the first response. Slots with fewer than $min_posts posts are not ranked
-- (is_sufficient = false); the others are ranked by the lower confidence bound of the
-- expected engagement, so a slot needs both a high mean and enough evidence to rank high.
-- Documented in transforms/README.md. Parameter: $min_posts (integer >= 2), bound by the runner.
with

threads as (
    select * from marts.response_times
),

-- The zero-filled source x weekday x hour grid (with each source's time zone): the slots of
-- marts.response_times_by_slot, built before this mart from the same threads.
grid as (
    select source, timezone, weekday, hour
    from marts.response_times_by_slot
),

cells as (
    select
        source,
        weekday,
        hour,
        count(*) as posts,
        avg(engagement_within) as mean_engagement,
        stddev_samp(engagement_within) as engagement_sd,
        avg(answers_within) as mean_answers,
        avg(comments_within) as mean_comments,
        avg(votes_within) as mean_votes,
        count(*) filter (where responded_within) as responded,
        quantile_cont(hours_to_first_response, 0.5) as median_hours_to_first_response
    from threads
    where window_complete
    group by source, weekday, hour
),

scored as (
    select
        grid.source,
        grid.timezone,
        grid.weekday,
        grid.hour,
        coalesce(cells.posts, 0) as posts,
        cells.mean_engagement,
        cells.engagement_sd,
        case
            when cells.posts >= 2
                then greatest(0.0, cells.mean_engagement - 1.959964 * cells.engagement_sd / sqrt(cells.posts))
        end as engagement_ci_low,
        case
            when cells.posts >= 2
                then cells.mean_engagement + 1.959964 * cells.engagement_sd / sqrt(cells.posts)
        end as engagement_ci_high,
        cells.mean_answers,
        cells.mean_comments,
        cells.mean_votes,
        coalesce(cells.responded, 0) as responded,
        case when cells.posts > 0 then cells.responded / cells.posts end as response_share,
        case
            when cells.posts > 0 then (
                cells.responded / cells.posts + 1.959964 ^ 2 / (2 * cells.posts)
                - 1.959964 * sqrt(
                    (cells.responded / cells.posts) * (1 - cells.responded / cells.posts) / cells.posts
                    + 1.959964 ^ 2 / (4 * cells.posts * cells.posts)
                )
            ) / (1 + 1.959964 ^ 2 / cells.posts)
        end as response_share_wilson_low,
        cells.median_hours_to_first_response,
        coalesce(cells.posts, 0) >= $min_posts as is_sufficient
    from grid
    left join cells using (source, weekday, hour)
),

ranked as (
    select
        source,
        weekday,
        hour,
        row_number() over (
            partition by source
            order by engagement_ci_low desc, mean_engagement desc, weekday, hour
        ) as rank
    from scored
    where is_sufficient
),

final as (
    select
        scored.source,
        scored.weekday,
        ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][scored.weekday] as weekday_name,
        scored.hour,
        scored.timezone,
        scored.posts,
        scored.mean_engagement,
        scored.engagement_sd,
        scored.engagement_ci_low,
        scored.engagement_ci_high,
        scored.mean_answers,
        scored.mean_comments,
        scored.mean_votes,
        scored.responded,
        scored.response_share,
        scored.response_share_wilson_low,
        scored.median_hours_to_first_response,
        scored.is_sufficient,
        ranked.rank
    from scored
    left join ranked using (source, weekday, hour)
    order by scored.source, scored.weekday, scored.hour
)

select * from final
