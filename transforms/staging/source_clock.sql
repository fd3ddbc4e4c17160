-- staging.source_clock
-- grain: source
-- One row per source with hour-precise activity: as_of, its last hour-precise activity (the
-- newest created_at of staging.live_content or occurred_at of an exact-precision engagement
-- event; Stack Exchange votes carry only a date and do not count). The marts measure ages and
-- complete windows against it, never now(): the same data gives the same marts.
-- Built by the runner as a view, before the marts. Documented in transforms/README.md.
with

final as (
    select source, max(ts) as as_of
    from (
        select source, created_at as ts from staging.live_content
        union all
        select source, occurred_at as ts from staging.engagement_events where time_precision = 'exact'
    )
    group by source
)

select * from final
