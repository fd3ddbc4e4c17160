-- marts.moderation_queue
-- Grain: one row per current flag (moderation.flags) whose content still exists in
-- staging.content, with the author, the flag's model scores and a global priority
-- (1 = review first: severity desc, then newest first). Documented in transforms/README.md.
with

flags as (
    select * from moderation.flags
),

flagged_content as (
    select
        flags.source,
        flags.content_id,
        content.kind,
        content.thread_id,
        content.parent_id,
        content.author_id,
        users.display_name as author_name,
        content.created_at,
        content.title,
        content.body_text,
        content.tags,
        flags.model_id,
        flags.content_hash,
        scores.is_fallback,
        flags.flagged_labels,
        flags.max_label,
        flags.max_score,
        flags.severity,
        flags.hold,
        scores.toxicity,
        scores.severe_toxicity,
        scores.obscene,
        scores.threat,
        scores.insult,
        scores.identity_attack,
        scores.sexual_explicit
    from flags
    inner join staging.content as content using (source, content_id)
    left join staging.users as users
        on users.source = content.source and users.user_id = content.author_id
    left join moderation.scores as scores
        on scores.content_hash = flags.content_hash and scores.model_id = flags.model_id
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
        case
            when author_id is null then 0
            else count(*) over (partition by source, author_id) - 1
        end as author_prior_flags,
        row_number() over (
            order by severity desc, created_at desc, source, content_id
        ) as priority
    from flagged_content
    order by priority
)

select * from final
