"""The real-time moderation API: a self-hosted, Perspective-compatible scoring service and a
Discourse webhook (``pulse api serve``; README "Real-time moderation API").

Modules: :mod:`pulse.api.app` (the FastAPI app factory and its routes),
:mod:`pulse.api.perspective` (Perspective's request/response models, attribute map, Google-style
errors and the discovery document), :mod:`pulse.api.batching` (dynamic micro-batching of
concurrent requests into engine batches), :mod:`pulse.api.keys` (hashed API keys in the review
store, per-key token buckets), :mod:`pulse.api.live_queue` (flagged posts waiting for the next
pipeline run, read by the review queue page) and :mod:`pulse.api.webhook` (Discourse's webhook:
signatures, replays, scoring, the optional flag-back).

The API never opens the DuckDB warehouse: the pipeline stays its only writer. What it keeps lives
in the review store (SQLite WAL or PostgreSQL): key hashes, webhook delivery ids and the live
queue items of flagged posts.
"""
