-- marts.engagement_daily
-- grain: source, day
-- day is the local date in the community's time zone for content,
-- exact-precision events and user sign-ups; day-precision events (Stack Exchange votes, which
-- the dump truncates to the UTC day) are counted on their UTC date, because their local date
-- is unknowable. Every day from the source's first to its last dated record (content, event
-- or user sign-up) appears, zero-filled.
-- DAU = active_users; WAU / MAU = distinct active users in the 7 / 30 days ending that day;
-- stickiness = DAU / MAU. A user's activity on day d counts toward WAU/MAU on days
-- d .. d+6 / d .. d+29: each user's active days become spells that end at the next active
-- day, so the rolling distinct count is a running sum of +1/-1 changes (no self-join).
-- Response rate: thread roots created that day answered by another member within
-- $window_days days (from marts.response_times, built before this mart).
-- Documented in transforms/README.md.
-- incremental: days -- a day's row reads that day's activity, the 29 days before it (WAU /
-- MAU) and the threads started that day: the days in pulse_scope_days are rebuilt with the 30
-- after them (their activity counts toward those days' WAU / MAU) and the $window_days + 1
-- before them (a response on them may answer a thread started then); response_window_complete,
-- which follows the data's end, is refreshed on every row.
with

sources as (
    -- each source's time zone from ops.sources (no row, NULL or empty: 'UTC'; joined with a left
    -- join): the small table, not staging.community_sources, whose stream flags scan every row
    select source, coalesce(nullif(timezone, ''), 'UTC') as timezone
    from ops.sources
),

content_days as (
    select
        content.source,
        timezone(coalesce(sources.timezone, 'UTC'), timezone('UTC', content.created_at))::date as day,
        content.kind,
        content.author_id
    from staging.live_content as content
    left join sources using (source)
    -- a cheap UTC bound before the time zone conversion: the earliest day read (see read_days), less 2
    where content.created_at >= (select min(day) - ($window_days + 32) from pulse_scope_days)  -- @partition
),

event_days as (
    select
        events.source,
        case
            when events.time_precision = 'exact'
                then timezone(coalesce(sources.timezone, 'UTC'), timezone('UTC', events.occurred_at))::date
            else events.occurred_at::date  -- day precision: the UTC date as delivered
        end as day,
        events.event_type,
        events.user_id
    from staging.engagement_events as events
    left join sources using (source)
    where events.occurred_at >= (select min(day) - ($window_days + 32) from pulse_scope_days)  -- @partition
),

rebuilt_days as (
    -- the days this build writes (see the header)
    select distinct scope.source, (scope.day + offsets.k)::date as day
    from pulse_scope_days as scope
    cross join (select unnest(range(-($window_days + 1), 31))::integer as k) as offsets
),

read_days as (
    -- the days their rows read: each rebuilt day and the 29 before it
    select distinct rebuilt_days.source, (rebuilt_days.day - offsets.k)::date as day
    from rebuilt_days
    cross join (select unnest(range(0, 30))::integer as k) as offsets
),

user_days as (
    select
        users.source,
        timezone(coalesce(sources.timezone, 'UTC'), timezone('UTC', users.created_at))::date as day,
        users.user_id
    from staging.users as users
    left join sources using (source)
    where users.created_at is not null
        and users.created_at >= (select min(day) - ($window_days + 32) from pulse_scope_days)  -- @partition
),

read_content_days as (
    select * from content_days
    where (source, day) in (select source, day from read_days)  -- @partition
),

read_event_days as (
    select * from event_days
    where (source, day) in (select source, day from read_days)  -- @partition
),

active_users as (
    select source, day, count(distinct user_id) as active_users
    from (
        select source, day, author_id as user_id from read_content_days where author_id is not null
        union all
        select source, day, user_id from read_event_days where user_id is not null
    )
    group by source, day
),

active_user_days as (
    select distinct source, day, user_id
    from (
        select source, day, author_id as user_id from read_content_days where author_id is not null
        union all
        select source, day, user_id from read_event_days where user_id is not null
    )
),

user_spells as (
    -- one row per user and active day, with the user's next active day (NULL after the last)
    select
        source,
        user_id,
        day,
        lead(day) over (partition by source, user_id order by day) as next_day
    from active_user_days
),

window_changes as (
    -- +1 when a spell starts, -1 when the 7-day (WAU) / 30-day (MAU) window of its last day
    -- has passed or the next spell starts, whichever is first
    select source, day, 1 as wau_delta, 1 as mau_delta from user_spells
    union all
    select source, least(day + 7, coalesce(next_day, day + 7)), -1, 0 from user_spells
    union all
    select source, least(day + 30, coalesce(next_day, day + 30)), 0, -1 from user_spells
),

daily_changes as (
    select source, day, sum(wau_delta) as wau_delta, sum(mau_delta) as mau_delta
    from window_changes
    group by source, day
),

thread_days as (
    select
        source,
        created_local::date as day,
        count(*) as new_threads,
        count(*) filter (where responded_within) as threads_responded
    from marts.response_times
    where (source, created_local::date) in (select source, day from rebuilt_days)  -- @partition
    group by source, created_local::date
),

data_end as (
    select source, timezone(any_value(timezone), timezone('UTC', max(as_of)))::date as as_of_day
    from marts.response_times
    group by source
),

new_users as (
    select source, day, count(*) as new_users
    from user_days
    where (source, day) in (select source, day from rebuilt_days)  -- @partition
    group by source, day
),

content_counts as (
    select
        source,
        day,
        count(*) as new_content,
        count(*) filter (where kind = 'question') as questions,
        count(*) filter (where kind = 'answer') as answers,
        count(*) filter (where kind = 'comment') as comments,
        count(*) filter (where kind = 'post') as posts,
        count(*) filter (where kind = 'reply') as replies
    from read_content_days
    where (source, day) in (select source, day from rebuilt_days)  -- @partition
    group by source, day
),

event_counts as (
    select
        source,
        day,
        count(*) filter (where event_type = 'upvote') as upvotes,
        count(*) filter (where event_type = 'downvote') as downvotes,
        count(*) filter (where event_type = 'favorite') as favorites,
        count(*) filter (where event_type = 'accept') as accepts,
        count(*) as events
    from read_event_days
    where (source, day) in (select source, day from rebuilt_days)  -- @partition
    group by source, day
),

source_span as (
    -- each source's first and last day over the three streams, from the build's extents
    -- (pulse_extents: transforms.incremental.compute_extents), not from every row: local dates,
    -- but the UTC date for events that are not hour-precise (as event_days)
    select
        extents.source,
        min(
            case
                when extents.stream in ('live_content', 'users', 'events_exact')
                    then timezone(coalesce(sources.timezone, 'UTC'), timezone('UTC', extents.first_at))::date
                else extents.first_at::date
            end
        ) as first_day,
        max(
            case
                when extents.stream in ('live_content', 'users', 'events_exact')
                    then timezone(coalesce(sources.timezone, 'UTC'), timezone('UTC', extents.last_at))::date
                else extents.last_at::date
            end
        ) as last_day
    from pulse_extents as extents
    left join sources using (source)
    group by extents.source
),

days as (
    -- the days read, and every day a WAU / MAU change falls on (a spell read may end in a gap
    -- between them), so the running sums below count every change before each rebuilt day
    select *
    from (
        select
            source,
            unnest(generate_series(first_day, last_day, interval 1 day))::date as day
        from source_span
    )
    where (source, day) in (select source, day from read_days union select source, day from daily_changes)  -- @partition
),

read_rows as (
    select
        days.source,
        days.day,
        coalesce(active_users.active_users, 0) as active_users,
        coalesce(new_users.new_users, 0) as new_users,
        coalesce(content_counts.new_content, 0) as new_content,
        coalesce(content_counts.questions, 0) as questions,
        coalesce(content_counts.answers, 0) as answers,
        coalesce(content_counts.comments, 0) as comments,
        coalesce(content_counts.posts, 0) as posts,
        coalesce(content_counts.replies, 0) as replies,
        coalesce(event_counts.upvotes, 0) as upvotes,
        coalesce(event_counts.downvotes, 0) as downvotes,
        coalesce(event_counts.favorites, 0) as favorites,
        coalesce(event_counts.accepts, 0) as accepts,
        coalesce(event_counts.upvotes, 0) + coalesce(event_counts.downvotes, 0) as votes,
        coalesce(event_counts.events, 0) as events,
        coalesce(active_users.active_users, 0) as dau,
        (sum(coalesce(daily_changes.wau_delta, 0)) over running)::bigint as wau,
        (sum(coalesce(daily_changes.mau_delta, 0)) over running)::bigint as mau,
        case
            when sum(coalesce(daily_changes.mau_delta, 0)) over running > 0
                then coalesce(active_users.active_users, 0)
                    / sum(coalesce(daily_changes.mau_delta, 0)) over running
        end as stickiness,
        coalesce(thread_days.new_threads, 0) as new_threads,
        coalesce(thread_days.threads_responded, 0) as threads_responded,
        case
            when thread_days.new_threads > 0 then thread_days.threads_responded / thread_days.new_threads
        end as response_rate,
        coalesce(days.day + ($window_days + 1) <= data_end.as_of_day, false) as response_window_complete
    from days
    left join active_users using (source, day)
    left join daily_changes using (source, day)
    left join thread_days using (source, day)
    left join data_end using (source)
    left join new_users using (source, day)
    left join content_counts using (source, day)
    left join event_counts using (source, day)
    window running as (partition by days.source order by days.day rows between unbounded preceding and current row)
),

final as (
    select *
    from read_rows
    where (source, day) in (select source, day from rebuilt_days)  -- @partition
    order by source, day
)

select * from final

-- @delete
delete from marts.engagement_daily
where (source, day) in (
    select distinct scope.source, (scope.day + offsets.k)::date
    from pulse_scope_days as scope
    cross join (select unnest(range(-($window_days + 1), 31))::integer as k) as offsets
);

-- @refresh: the data's end moved for every day of the source
update marts.engagement_daily as daily
set response_window_complete = coalesce(daily.day + ($window_days + 1) <= data_end.as_of_day, false)
from (
    select sources.source, data_end.as_of_day
    from (select distinct source from marts.engagement_daily) as sources
    left join (
        select source, timezone(any_value(timezone), timezone('UTC', max(as_of)))::date as as_of_day
        from marts.response_times
        group by source
    ) as data_end using (source)
) as data_end
where daily.source = data_end.source
    and daily.response_window_complete
        is distinct from coalesce(daily.day + ($window_days + 1) <= data_end.as_of_day, false);
