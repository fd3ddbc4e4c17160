-- 004_platform: what a live platform adds to the canonical model, and moderators' decisions.
-- Soft deletes and hidden posts (Discourse's posts.deleted_at / hidden) propagate to staging;
-- engagement events carry optional JSON properties (a community report's flag type, an event
-- export's extra fields).
alter table raw.content add column if not exists deleted_at timestamp;
alter table raw.content add column if not exists hidden boolean;
alter table staging.content add column if not exists deleted_at timestamp;
alter table staging.content add column if not exists hidden boolean;
alter table raw.engagement_events add column if not exists properties varchar;
alter table staging.engagement_events add column if not exists properties varchar;

-- Moderators' decisions, ingested each run from the review store (append-only there; this is
-- a copy keyed by the store's decision id). One row per state transition of a review item.
create table if not exists moderation.decisions (
    decision_id varchar primary key,   -- the review store's id (stable across ingests)
    source varchar not null,
    content_id varchar not null,
    content_hash varchar,              -- the text that was reviewed
    item_version integer not null,     -- the item's version this decision created (1, 2, ...)
    from_state varchar not null,       -- pending | escalated | approved | removed
    to_state varchar not null,         -- approved | removed | escalated
    action varchar not null,           -- approve | remove | escalate
    reason_code varchar,               -- e.g. harassment, spam, false_positive
    note varchar,                      -- moderator's free text
    actor varchar not null,            -- the moderator's username
    decided_at timestamp not null,     -- naive UTC
    model_id varchar,                  -- the model that flagged the item (null: community report only)
    thresholds_json varchar,           -- the flag thresholds in force when it was flagged
    scores_json varchar,               -- the label scores the moderator saw
    ingested_run_id varchar not null
);

-- Content the public marts may show: not deleted or hidden on the platform, and not removed by
-- a moderator (the latest decision on the item). Marts read this view, not staging.content.
create or replace view staging.live_content as
select c.*
from staging.content c
where c.deleted_at is null
  and not coalesce(c.hidden, false)
  and not exists (
      select 1 from (
          select source, content_id, to_state,
                 row_number() over (partition by source, content_id order by decided_at desc, item_version desc) as rn
          from moderation.decisions
      ) d
      where d.rn = 1 and d.to_state = 'removed' and d.source = c.source and d.content_id = c.content_id
  );
