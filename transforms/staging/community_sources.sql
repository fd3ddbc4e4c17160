-- staging.community_sources
-- grain: source
-- One row per source with rows in any stream the marts read (staging.live_content,
-- staging.engagement_events, staging.users): the community's time zone from ops.sources (a
-- missing row, NULL or '' means 'UTC'; the runner has checked every configured zone against
-- the IANA database before building anything) and one flag per stream saying whether the
-- source has rows there. The marts differ on purpose in which streams count a source as seen,
-- so each selects its own with the flags: activity_heatmap content or events, engagement_daily
-- any of the three, response_times and trending_topics content only.
-- Built by the runner as a view, before the marts. Documented in transforms/README.md.
with

seen as (
    select
        source,
        bool_or(stream = 'live_content') as in_live_content,
        bool_or(stream = 'engagement_events') as in_engagement_events,
        bool_or(stream = 'users') as in_users
    from (
        select distinct source, 'live_content' as stream from staging.live_content
        union all
        select distinct source, 'engagement_events' as stream from staging.engagement_events
        union all
        select distinct source, 'users' as stream from staging.users
    )
    group by source
),

final as (
    select
        seen.source,
        coalesce(nullif(ops_sources.timezone, ''), 'UTC') as timezone,
        seen.in_live_content,
        seen.in_engagement_events,
        seen.in_users
    from seen
    left join ops.sources as ops_sources using (source)
)

select * from final
