-- marts.response_times
-- grain: source, content_id
-- One row per thread root of kind question or post (a root's content_id equals its
-- thread_id, or it has none). A *response* is any item of the thread (answer, reply, comment)
-- written by another member (a different author_id; an unknown author on either side counts as
-- another member) and not before the root. Answers are kinds answer and reply (a forum's
-- replies answer its posts); comments are kind comment.
-- "Within the window" means created at most $window_days days after the root. as_of is the
-- source's last hour-precise activity (never now()), so a rebuild of the same data gives the
-- same rows; window_complete says whether the root's whole window lies before as_of.
-- Engagement counts only hour-precise events: Stack Exchange votes carry a date only, so they
-- are left out (votes_within is 0 for them). Documented in transforms/README.md.
-- Parameter: $window_days (integer >= 1), bound by the runner.
-- incremental: threads -- a row reads only its thread (root, responses, votes on the root):
-- the roots in pulse_scope_threads are rebuilt; as_of and window_complete, which follow the
-- data's end, are refreshed on every row.
with

sources as (
    -- each source's time zone from ops.sources (no row, NULL or empty: 'UTC'; joined with a left
    -- join): the small table, not staging.community_sources, whose stream flags scan every row
    select source, coalesce(nullif(timezone, ''), 'UTC') as timezone
    from ops.sources
),

data_end as (
    select source, as_of from staging.source_clock
),

threads as (
    select
        content.source,
        content.content_id,
        content.kind,
        content.author_id,
        content.created_at,
        coalesce(sources.timezone, 'UTC') as timezone,
        timezone(coalesce(sources.timezone, 'UTC'), timezone('UTC', content.created_at)) as created_local
    from staging.live_content as content
    left join sources using (source)
    where content.kind in ('question', 'post')
        and coalesce(content.thread_id, content.content_id) = content.content_id
        and (content.source, content.content_id) in (select source, root_id from pulse_scope_threads)  -- @partition
),

responses as (
    select
        threads.source,
        threads.content_id as root_id,
        threads.created_at as root_created_at,
        reply.kind,
        reply.created_at
    from threads
    inner join staging.live_content as reply
        on reply.source = threads.source and reply.thread_id = threads.content_id
    where reply.content_id <> threads.content_id
        and reply.created_at >= threads.created_at
        and (reply.author_id is null or threads.author_id is null or reply.author_id <> threads.author_id)
),

response_stats as (
    select
        source,
        root_id,
        min(created_at) filter (where kind in ('answer', 'reply')) as first_answer_at,
        min(created_at) filter (where kind = 'comment') as first_comment_at,
        min(created_at) as first_response_at,
        count(*) filter (where kind in ('answer', 'reply')) as answers,
        count(*) filter (where kind = 'comment') as comments,
        count(*) filter (
            where kind in ('answer', 'reply') and created_at <= root_created_at + to_days($window_days)
        ) as answers_within,
        count(*) filter (
            where kind = 'comment' and created_at <= root_created_at + to_days($window_days)
        ) as comments_within
    from responses
    group by source, root_id
),

root_votes as (
    select threads.source, threads.content_id as root_id, count(*) as votes_within
    from threads
    inner join staging.engagement_events as events
        on events.source = threads.source and events.content_id = threads.content_id
    where events.time_precision = 'exact'
        and events.event_type in ('upvote', 'downvote')
        and events.occurred_at >= threads.created_at
        and events.occurred_at <= threads.created_at + to_days($window_days)
    group by threads.source, threads.content_id
),

final as (
    select
        threads.source,
        threads.content_id,
        threads.kind,
        ops.pseudonym(threads.source, threads.author_id) as author_id,  -- pseudonym: response figures need no identity
        threads.created_at,
        threads.created_local,
        threads.timezone,
        isodow(threads.created_local)::integer as weekday,
        hour(threads.created_local)::integer as hour,
        stats.first_answer_at,
        stats.first_comment_at,
        stats.first_response_at,
        date_diff('millisecond', threads.created_at, stats.first_answer_at) / 3600000.0 as hours_to_first_answer,
        date_diff('millisecond', threads.created_at, stats.first_comment_at) / 3600000.0 as hours_to_first_comment,
        date_diff('millisecond', threads.created_at, stats.first_response_at) / 3600000.0 as hours_to_first_response,
        coalesce(stats.answers, 0) as answers,
        coalesce(stats.comments, 0) as comments,
        coalesce(stats.answers, 0) > 0 as is_answered,
        coalesce(stats.answers_within, 0) as answers_within,
        coalesce(stats.comments_within, 0) as comments_within,
        coalesce(root_votes.votes_within, 0) as votes_within,
        coalesce(stats.answers_within, 0) + coalesce(stats.comments_within, 0)
            + coalesce(root_votes.votes_within, 0) as engagement_within,
        coalesce(stats.first_response_at <= threads.created_at + to_days($window_days), false)
            as responded_within,
        threads.created_at + to_days($window_days) <= data_end.as_of as window_complete,
        data_end.as_of
    from threads
    inner join data_end using (source)
    left join response_stats as stats
        on stats.source = threads.source and stats.root_id = threads.content_id
    left join root_votes
        on root_votes.source = threads.source and root_votes.root_id = threads.content_id
    order by threads.source, threads.created_at, threads.content_id
)

select * from final

-- @delete
delete from marts.response_times
where (source, content_id) in (select source, root_id from pulse_scope_threads);

-- @refresh: the data's end moved for every thread of the source
update marts.response_times as t
set as_of = clock.as_of, window_complete = t.created_at + to_days($window_days) <= clock.as_of
from staging.source_clock as clock
where t.source = clock.source and t.as_of is distinct from clock.as_of;
