-- marts.moderation_queue
-- grain: source, content_id
-- One row per item needing review, for any of three reasons (queue_reasons):
--   model_flag             a current flag in moderation.flags (score >= a label's threshold)
--   community_report       members reported it (engagement events with event_type 'report')
--   language_not_supported its detected language is not one the active model reads
-- Items deleted or hidden on the platform are left out; items moderators approved or removed
-- stay, with review_state as of the last ingest of decisions (the app reads live states from
-- the review store). Priority 1 = review first: the highest priority_score, older first on ties.
-- priority_score (0 to 10) = 4 * model + 2 * reports + 2 * history + 1 * reach + 1 * age, each
-- signal in [0, 1] (formula, caps and sources: moderation/policy.py, which mirrors it in
-- priority_terms, and transforms/README.md). A lexical (fallback) model never sets hold.
-- Parameter: $repeat_offender_window_days. Documented in transforms/README.md.
-- incremental: items -- a row reads its item, the item's parent and thread root, the events on
-- it, its replies and its author's other items: the items of queue_rebuilt_items (see @scope)
-- are rebuilt; age_hours, priority_age, priority_score and priority, which follow the data's end
-- and the other rows, are refreshed on every row. A new model, language policy
-- or flag thresholds change the build fingerprint (transforms.incremental): a full rebuild.
-- Text columns (title, body, tags) are read only for the queued items, their parents and
-- threads, joined on (source, content_id, created_at): the creation time lets DuckDB skip the
-- row groups written before the oldest of them.
with

flags as (
    select * from moderation.flags
),

policy as (
    -- the language policy of the model that scored the latest run (one row, or none)
    select model_id, supported_languages, min_confidence
    from moderation.language_policy
    order by updated_at desc, model_id
    limit 1
),

reports as (
    select
        source,
        content_id,
        count(*) as report_count,
        count(distinct user_id) as reporter_count,
        list_sort(list(distinct coalesce(
            case when json_valid(properties) then json_extract_string(properties, '$.flag_type') end,
            'unspecified'
        ))) as report_types,
        min(occurred_at) as first_reported_at
    from staging.engagement_events
    where event_type = 'report'
    group by source, content_id
),

routed as (
    -- items in a language the active model does not read (confidently detected, not 'und')
    select source, content_id
    from staging.content
    where content_hash in (
        select languages.content_hash
        from moderation.languages as languages
        inner join policy on true
        where languages.language <> 'und'
            and languages.confidence >= policy.min_confidence
            and not list_contains(policy.supported_languages, languages.language)
    )
        and (source, content_id) in (select source, content_id from queue_rebuilt_items)  -- @partition
),

candidates as (
    select source, content_id from flags
    union
    select source, content_id from reports
    union
    select source, content_id from routed
),

content as (
    -- the queued items (no text: see texts); deleted or hidden items are left out
    select source, content_id, kind, thread_id, parent_id, author_id, created_at, content_hash
    from staging.content
    where deleted_at is null and not coalesce(hidden, false)
        and (source, content_id) in (select source, content_id from candidates)
        and (source, content_id) in (select source, content_id from queue_rebuilt_items)  -- @partition
),

texts as (
    -- title, body and tags of the queued items, their parents and their threads' roots
    select
        c.source,
        c.content_id,
        c.title,
        c.body_text,
        c.tags,
        c.deleted_at is null and not coalesce(c.hidden, false) as live
    from staging.content as c
    inner join (
        select source, content_id, created_at from content
        union
        select source, content_id, created_at
        from staging.content
        where (source, content_id) in (
            select source, parent_id from content
            union
            select source, thread_id from content
        )
    ) as wanted using (source, content_id, created_at)
),

languages as (
    select
        content.source,
        content.content_id,
        languages.language,
        languages.confidence as language_confidence,
        case
            when languages.language is null or languages.language = 'und' or policy.model_id is null then null
            else list_contains(policy.supported_languages, languages.language)
        end as language_supported,
        coalesce(
            languages.language <> 'und'
            and languages.confidence >= policy.min_confidence
            and not list_contains(policy.supported_languages, languages.language),
            false
        ) as language_routed
    from content
    left join moderation.languages as languages using (content_hash)
    left join policy on true
),

interactions as (
    -- reach: engagement events on the item (reports excluded) plus its direct replies
    select source, content_id, sum(n) as reach
    from (
        select source, content_id, count(*) as n
        from staging.engagement_events
        where event_type <> 'report'
            and (source, content_id) in (select source, content_id from content)
        group by source, content_id
        union all
        select source, parent_id as content_id, count(*) as n
        from staging.content
        where deleted_at is null and not coalesce(hidden, false)
            and (source, parent_id) in (select source, content_id from content)
        group by source, parent_id
    )
    group by source, content_id
),

source_clock as (
    -- the age signal's "now": the source's newest item (old data does not age with the wall clock)
    select source, max(created_at) as as_of
    from staging.content
    where deleted_at is null and not coalesce(hidden, false)
    group by source
),

latest_decisions as (
    select *
    from moderation.decisions
    qualify row_number() over (
        partition by source, content_id order by decided_at desc, item_version desc, decision_id
    ) = 1
),

queued as (
    select
        content.source,
        content.content_id,
        content.kind,
        content.thread_id,
        content.parent_id,
        content.author_id,
        users.display_name as author_name,
        content.created_at,
        own.title,
        own.body_text,
        -- replies carry no tags of their own: they inherit their thread's
        coalesce(nullif(own.tags, []::varchar[]), thread.tags) as tags,
        coalesce(flags.model_id, policy.model_id) as model_id,
        content.content_hash,
        scores.is_fallback,
        coalesce(flags.flagged_labels, []::varchar[]) as flagged_labels,
        flags.max_label,
        flags.max_score,
        flags.severity as model_severity,
        coalesce(flags.hold, false) as model_hold,
        coalesce(scores.is_fallback, false)
            or starts_with(coalesce(flags.model_id, policy.model_id, ''), 'lexical:') as lexical_model,
        coalesce(interactions.reach, 0) as reach,
        greatest(date_diff('second', content.created_at, source_clock.as_of) / 3600.0, 0.0) as age_hours,
        scores.toxicity,
        scores.severe_toxicity,
        scores.obscene,
        scores.threat,
        scores.insult,
        scores.identity_attack,
        scores.sexual_explicit,
        coalesce(reports.report_count, 0) as report_count,
        coalesce(reports.reporter_count, 0) as reporter_count,
        coalesce(reports.report_types, []::varchar[]) as report_types,
        reports.first_reported_at,
        languages.language,
        languages.language_confidence,
        languages.language_supported,
        list_filter([
            case when flags.content_id is not null then 'model_flag' end,
            case when reports.content_id is not null then 'community_report' end,
            case when languages.language_routed then 'language_not_supported' end
        ], lambda x: x is not null) as queue_reasons,
        parent.title as parent_title,
        parent.body_text as parent_body,
        decisions.to_state as decided_state,
        decisions.content_hash as decided_hash,
        decisions.item_version as review_version,
        decisions.actor as last_actor,
        decisions.decided_at as last_decided_at
    from content
    inner join texts as own using (source, content_id)
    left join flags using (source, content_id)
    left join reports using (source, content_id)
    left join languages using (source, content_id)
    left join interactions using (source, content_id)
    left join source_clock using (source)
    left join policy on true
    left join moderation.scores as scores
        on scores.content_hash = content.content_hash
        and scores.model_id = coalesce(flags.model_id, policy.model_id)
    left join staging.users as users
        on users.source = content.source and users.user_id = content.author_id
    left join texts as parent
        on parent.source = content.source and parent.content_id = content.parent_id and parent.live
    left join texts as thread
        on thread.source = content.source and thread.content_id = content.thread_id
    left join latest_decisions as decisions
        on decisions.source = content.source and decisions.content_id = content.content_id
),

-- The author's history, over all of their content (also deleted, hidden or removed items):
-- an item counts when it was created in the window before this item.
author_items as (
    select
        c.source,
        c.author_id,
        c.content_id,
        c.created_at,
        (f.content_id is not null or r.content_id is not null) as was_flagged,
        coalesce(d.to_state = 'removed', false) as was_removed
    from staging.content as c
    left join flags as f using (source, content_id)
    left join reports as r using (source, content_id)
    left join latest_decisions as d using (source, content_id)
    where c.author_id is not null
        and (c.source, c.author_id) in (select source, author_id from content)
),

history as (
    select
        q.source,
        q.content_id,
        count(*) filter (where a.was_flagged) as author_prior_flags,
        count(*) filter (where a.was_removed) as author_prior_removals
    from queued as q
    inner join author_items as a
        on a.source = q.source
        and a.author_id = q.author_id
        and a.content_id <> q.content_id
        and a.created_at < q.created_at
        and a.created_at >= q.created_at - to_days(cast($repeat_offender_window_days as integer))
    group by q.source, q.content_id
),

scored as (
    select
        queued.*,
        -- severity: the model's (max over labels of score / threshold) when it flagged the
        -- item; community reports count 1.0 for the first reporter plus 0.25 per further
        -- distinct reporter, capped at 2.0; a language-routed item counts 1.0 (as an item
        -- exactly at its flag threshold). The highest of the applicable values wins.
        greatest(
            model_severity,
            case when report_count > 0 then least(1.0 + 0.25 * (greatest(reporter_count, 1) - 1), 2.0) end,
            case when list_contains(queue_reasons, 'language_not_supported') then 1.0 end
        ) as severity,
        -- hold: the policy's hold level, never from a lexical (fallback) model
        model_hold and not lexical_model as hold,
        -- priority signal "model": the severity on the threshold scale (flags, language routing),
        -- capped at 2 and halved when the model is lexical
        case when lexical_model then 0.5 else 1.0 end
            * least(coalesce(greatest(
                model_severity,
                case when list_contains(queue_reasons, 'language_not_supported') then 1.0 end
            ), 0.0), 2.0) / 2.0 as priority_model,
        case when report_count > 0 then least(greatest(reporter_count, 1), 5) / 5.0 else 0.0 end as priority_reports,
        least(ln(1 + reach) / ln(101), 1.0) as priority_reach,
        least(age_hours / 72.0, 1.0) as priority_age,
        case
            when decided_state is null then 'pending'
            when decided_state in ('approved', 'removed') and decided_hash is not null
                and decided_hash <> content_hash then 'pending'
            else decided_state
        end as review_state
    from queued
),

with_history as (
    select
        scored.*,
        case when author_id is null then 0 else coalesce(history.author_prior_flags, 0) end as author_prior_flags,
        case when author_id is null then 0 else coalesce(history.author_prior_removals, 0) end as author_prior_removals
    from scored
    left join history using (source, content_id)
),

weighted as (
    select
        *,
        least(author_prior_flags + 2 * author_prior_removals, 10) / 10.0 as priority_history,
        4.0 * priority_model + 2.0 * priority_reports
            + 2.0 * (least(author_prior_flags + 2 * author_prior_removals, 10) / 10.0)
            + 1.0 * priority_reach + 1.0 * priority_age as priority_score
    from with_history
),

final as (
    select
        source,
        content_id,
        kind,
        thread_id,
        parent_id,
        author_id,
        author_name,
        created_at,
        title,
        body_text,
        tags,
        model_id,
        content_hash,
        is_fallback,
        flagged_labels,
        max_label,
        max_score,
        severity,
        hold,
        toxicity,
        severe_toxicity,
        obscene,
        threat,
        insult,
        identity_attack,
        sexual_explicit,
        queue_reasons,
        report_count,
        reporter_count,
        report_types,
        first_reported_at,
        language,
        language_confidence,
        language_supported,
        parent_title,
        parent_body,
        review_state,
        coalesce(review_version, 0) as review_version,
        last_actor,
        last_decided_at,
        author_prior_flags,
        author_prior_removals,
        reach,
        age_hours,
        priority_model,
        priority_reports,
        priority_history,
        priority_reach,
        priority_age,
        priority_score,
        row_number() over (
            order by priority_score desc, created_at asc, source, content_id
        ) as priority
    from weighted
    order by priority
)

select * from final

-- @scope: the items whose row an incremental build rewrites: the changed items (new, edited,
-- re-scored or re-flagged with their batch, decided, deleted, or with new events: reports,
-- reach), their parents (reach counts replies), their replies (the parent's title and body),
-- the items of threads whose root changed (tags), every item of the changed items' authors
-- (the repeat-offender history) and of the members whose row changed (author_name)
create or replace temp table queue_rebuilt_items as
with
changed as (
    select distinct source, content_id from ops.mart_changes where stream <> 'users' and content_id is not null
),
changed_items as (
    select source, content_id, parent_id, author_id
    from staging.content
    where (source, content_id) in (select source, content_id from changed)
)
select source, content_id from changed
union
select source, parent_id from changed_items where parent_id is not null
-- and the rows already queued (only they, or changed items, can be candidates) whose parent
-- changed, whose thread's root changed, or whose author wrote a changed item or is a changed
-- member (partition lines: a full build, maybe the first, reads no queue)
union  -- @partition
select queue.source, queue.content_id from marts.moderation_queue as queue  -- @partition
where (queue.source, queue.parent_id) in (select source, content_id from changed)  -- @partition
    or (queue.source, coalesce(queue.thread_id, queue.content_id)) in (select source, root_id from pulse_scope_roots)  -- @partition
    or (queue.source, queue.author_id) in (select source, author_id from changed_items)  -- @partition
    or (queue.source, queue.author_id) in (select source, content_id from ops.mart_changes where stream = 'users')  -- @partition
;

-- @delete
delete from marts.moderation_queue
where (source, content_id) in (select source, content_id from queue_rebuilt_items);

-- @refresh: the data's end moves every row's age (and so its score and priority)
update marts.moderation_queue as q
set age_hours = r.age_hours,
    priority_age = r.priority_age,
    priority_score = r.priority_score,
    priority = r.priority
from (
    select
        source,
        content_id,
        age_hours,
        priority_age,
        priority_score,
        row_number() over (order by priority_score desc, created_at asc, source, content_id) as priority
    from (
        select
            *,
            4.0 * priority_model + 2.0 * priority_reports + 2.0 * priority_history
                + 1.0 * priority_reach + 1.0 * priority_age as priority_score
        from (
            select
                queue.source,
                queue.content_id,
                queue.created_at,
                queue.priority_model,
                queue.priority_reports,
                queue.priority_history,
                queue.priority_reach,
                greatest(date_diff('second', queue.created_at, clock.as_of) / 3600.0, 0.0) as age_hours,
                least(greatest(date_diff('second', queue.created_at, clock.as_of) / 3600.0, 0.0) / 72.0, 1.0)
                    as priority_age
            from marts.moderation_queue as queue
            left join (
                select source, max(created_at) as as_of
                from staging.content
                where deleted_at is null and not coalesce(hidden, false)
                group by source
            ) as clock using (source)
        )
    )
) as r
where q.source = r.source and q.content_id = r.content_id
    and (q.age_hours, q.priority_age, q.priority_score, q.priority)
        is distinct from (r.age_hours, r.priority_age, r.priority_score, r.priority);
