-- marts.hot_content
-- grain: source, content_id
-- One row per thread root (a content item whose content_id equals its thread_id, or
-- that has none), ranked per source by the Hacker News gravity formula
--   hot_score = points / (age_hours + 2) ^ 1.8
-- (Salihefendic, "How Hacker News ranking algorithm works", 2010; HN subtracts the submitter's
-- own vote from points, which we do not have). points = greatest(score, 0) + replies: the
-- platform's net score (content.score; for a platform without one, upvotes - downvotes from
-- the engagement events) plus the thread's other items (answers, comments, replies), since
-- replies are engagement too (Discourse's hot ranking also counts them).
-- age_hours is measured at as_of, the source's last hour-precise activity, never now(): the
-- same data gives the same ranking, and "hot" means hot as of the data's end.
-- Documented in transforms/README.md.
-- incremental: threads -- a root's points read only its thread: the roots in
-- pulse_scope_threads are rebuilt; as_of, age_hours, hot_score and rank, which follow the
-- data's end and the other roots, are refreshed on every row.
with

-- as_of: the source's last hour-precise activity, as marts.response_times (built before this
-- mart, over the same thread roots) computes it.
data_end as (
    select source, max(as_of) as as_of
    from marts.response_times
    group by source
),

roots as (
    select source, content_id, kind, title, tags, author_id, created_at, score
    from staging.live_content
    where coalesce(thread_id, content_id) = content_id
        and (source, content_id) in (select source, root_id from pulse_scope_threads)  -- @partition
),

thread_replies as (
    select source, thread_id as content_id, count(*) as replies
    from staging.live_content
    where thread_id is not null and thread_id <> content_id
        and (source, thread_id) in (select source, root_id from pulse_scope_threads)  -- @partition
    group by source, thread_id
),

net_votes as (
    select
        source,
        content_id,
        count(*) filter (where event_type = 'upvote') - count(*) filter (where event_type = 'downvote') as net_votes
    from staging.engagement_events
    where (source, content_id) in (select source, root_id from pulse_scope_threads)  -- @partition
    group by source, content_id
),

scored as (
    select
        roots.source,
        roots.content_id,
        roots.kind,
        roots.title,
        roots.tags,
        ops.pseudonym(roots.source, roots.author_id) as author_id,  -- pseudonym: the ranking needs no identity
        roots.created_at,
        data_end.as_of,
        greatest(date_diff('millisecond', roots.created_at, data_end.as_of) / 3600000.0, 0.0) as age_hours,
        coalesce(roots.score, net_votes.net_votes, 0) as score,
        coalesce(thread_replies.replies, 0) as replies
    from roots
    inner join data_end using (source)
    left join thread_replies using (source, content_id)
    left join net_votes using (source, content_id)
),

final as (
    select
        *,
        greatest(score, 0) + replies as points,
        (greatest(score, 0) + replies) / (age_hours + 2) ^ 1.8 as hot_score,
        row_number() over (
            partition by source order by (greatest(score, 0) + replies) / (age_hours + 2) ^ 1.8 desc,
                created_at desc, content_id
        ) as rank
    from scored
    order by source, rank
)

select * from final

-- @delete
delete from marts.hot_content
where (source, content_id) in (select source, root_id from pulse_scope_threads);

-- @refresh: the data's end and the other roots set every row's age, score and rank
update marts.hot_content as h
set as_of = r.as_of, age_hours = r.age_hours, hot_score = r.hot_score, rank = r.rank
from (
    select
        source,
        content_id,
        as_of,
        age_hours,
        points / (age_hours + 2) ^ 1.8 as hot_score,
        row_number() over (
            partition by source order by points / (age_hours + 2) ^ 1.8 desc, created_at desc, content_id
        ) as rank
    from (
        select
            hot.source,
            hot.content_id,
            hot.created_at,
            hot.points,
            data_end.as_of,
            greatest(date_diff('millisecond', hot.created_at, data_end.as_of) / 3600000.0, 0.0) as age_hours
        from marts.hot_content as hot
        inner join (select source, max(as_of) as as_of from marts.response_times group by source) as data_end
            using (source)
    )
) as r
where h.source = r.source and h.content_id = r.content_id
    and (h.rank, h.hot_score, h.as_of) is distinct from (r.rank, r.hot_score, r.as_of);
