"""The expectation suites as data: which checks guard the staging batch and the marts.

A suite is a sequence of :class:`Check` (table, Great Expectations expectation class name, its
keyword arguments, whether a failure is critical, a short description). This module only
declares them; :mod:`warehouse.quality.runner` runs them with Great Expectations, persists the
results and builds Data Docs.

- :data:`STAGING_SUITE` checks the incoming batch of canonical records *before* it is upserted
  into ``staging.*``; frames are keyed ``staging.users``, ``staging.content``,
  ``staging.engagement_events``. The events frame must carry a boolean ``content_exists``
  column (see :func:`with_reference_flag`): a precomputed flag validated against ``{True}``
  scales to millions of ids, where a ``value_set`` of every existing content id would not.
- :data:`MARTS_SUITE` checks the marts' columns and ``moderation.scores`` before a snapshot is
  published. Each mart's grain (the columns one row is unique on) is declared by its model in
  ``transforms`` (a layer above, so not imported here); :func:`marts_suite` adds one
  uniqueness check per mart from those grains, and the pipeline runs
  ``marts_suite(transforms.runner.MART_GRAINS)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from warehouse.canonical import CONTENT_KINDS, LABELS


class _Now:
    """Sentinel for "the ``now`` passed to :func:`validate`" inside a check's kwargs."""

    _instance: _Now | None = None

    def __new__(cls) -> _Now:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "now"


NOW = _Now()
"""Use as a kwarg value (e.g. ``max_value=NOW``); replaced by :func:`validate`'s ``now``."""


@dataclass(frozen=True)
class Check:
    """One expectation on one table.

    Attributes:
        table: the frame it applies to, named like the warehouse table (``staging.content``).
        expectation: a GE 1.x expectation class name from ``great_expectations.expectations``,
            e.g. ``ExpectColumnValuesToNotBeNull``.
        kwargs: the expectation's keyword arguments (``column``, ``column_list``,
            ``value_set``, ``min_value``, ``max_value`` ...). :data:`NOW` stands for the
            validation time. No ``mostly``: a check holds for every row or fails.
        critical: a failure stops the pipeline (:meth:`SuiteResult.raise_for_critical`);
            otherwise it is recorded and logged as a warning.
        description: one short human sentence saying what the check protects.
    """

    table: str
    expectation: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    critical: bool = True
    description: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the check reads (empty for table-level expectations)."""
        k = self.kwargs
        if "column" in k:
            return (k["column"],)
        if "column_list" in k:
            return tuple(k["column_list"])
        if "column_A" in k and "column_B" in k:
            return (k["column_A"], k["column_B"])
        return ()

    @property
    def column(self) -> str:
        """The column name as stored in ``quality.validation_results.column_name``.

        Multi-column checks join their columns with commas; table-level checks give ``''``.
        """
        return ",".join(self.columns)

    @property
    def key(self) -> tuple[str, str, str]:
        """(table, expectation, column): unique within a suite (the results' primary key)."""
        return (self.table, self.expectation, self.column)

    def target(self) -> str:
        """``table.column``, ``table.(a, b)`` or ``table``: how messages name the target."""
        cols = self.columns
        if len(cols) == 1:
            return f"{self.table}.{cols[0]}"
        if cols:
            return f"{self.table}.({', '.join(cols)})"
        return self.table

    def params(self) -> str:
        """The kwargs other than the columns, e.g. ``(min_value=0, max_value=now)``; '' if none."""
        parts = []
        for name, value in self.kwargs.items():
            if name in {"column", "column_list", "column_A", "column_B"}:
                continue
            if isinstance(value, (list, tuple, set, frozenset)):
                items = [repr(v) for v in value]
                shown = ", ".join(items[:6]) + (", ..." if len(items) > 6 else "")
                value_text = f"[{shown}]"
            else:
                value_text = repr(value) if isinstance(value, str) else str(value)
            parts.append(f"{name}={value_text}")
        return f"({', '.join(parts)})" if parts else ""


# --------------------------------------------------------------------------------------------
# Suites


def _not_null(table: str, column: str, description: str, critical: bool = True) -> Check:
    return Check(table, "ExpectColumnValuesToNotBeNull", {"column": column}, critical, description)


def _unique(table: str, columns: Sequence[str], description: str) -> Check:
    return Check(table, "ExpectCompoundColumnsToBeUnique", {"column_list": list(columns)}, True, description)


def _between(table: str, column: str, description: str, *, critical: bool = True, **bounds: Any) -> Check:
    return Check(table, "ExpectColumnValuesToBeBetween", {"column": column, **bounds}, critical, description)


def _in_set(table: str, column: str, values: Iterable[Any], description: str) -> Check:
    return Check(
        table, "ExpectColumnValuesToBeInSet", {"column": column, "value_set": sorted(values)}, True, description
    )


def _staging_suite() -> tuple[Check, ...]:
    users, content, events = "staging.users", "staging.content", "staging.engagement_events"
    return (
        _not_null(users, "source", "every user is namespaced by its source"),
        _not_null(users, "user_id", "every user has an id"),
        _unique(users, ("source", "user_id"), "natural key (source, user_id) is unique in the batch"),
        _not_null(
            users, "created_at", "users carry a creation time (staging allows null: warning only)", critical=False
        ),
        _between(users, "created_at", "no user was created in the future", max_value=NOW),
        _not_null(content, "source", "every item is namespaced by its source"),
        _not_null(content, "content_id", "every item has an id"),
        _unique(content, ("source", "content_id"), "natural key (source, content_id) is unique in the batch"),
        _not_null(content, "kind", "every item has a kind"),
        _in_set(content, "kind", CONTENT_KINDS, "kind is a canonical kind"),
        _not_null(content, "created_at", "every item has a creation time"),
        _between(content, "created_at", "no item was created in the future", max_value=NOW),
        _not_null(content, "content_hash", "every item has the hash moderation keys its scores by"),
        _not_null(events, "source", "every event is namespaced by its source"),
        _not_null(events, "event_id", "every event has an id"),
        _unique(events, ("source", "event_id"), "natural key (source, event_id) is unique in the batch"),
        _not_null(events, "event_type", "every event has a type"),
        _not_null(events, "content_id", "every event refers to an item"),
        _not_null(events, "occurred_at", "every event has a time"),
        _between(events, "occurred_at", "no event happened in the future", max_value=NOW),
        _not_null(events, "time_precision", "every event states its time precision"),
        _in_set(events, "time_precision", ("exact", "day"), "time precision is exact or day"),
        _in_set(
            events,
            "content_exists",
            (True,),
            "every event's content_id is in staging.content or this batch (flag from with_reference_flag)",
        ),
    )


SCORE_LABELS: tuple[str, ...] = LABELS
"""Detoxify label columns of ``moderation.scores`` (null where a model lacks the label)."""

ENGAGEMENT_DAILY_COUNTS: tuple[str, ...] = (
    "active_users",
    "new_users",
    "new_content",
    "questions",
    "answers",
    "comments",
    "posts",
    "replies",
    "upvotes",
    "downvotes",
    "favorites",
    "accepts",
    "votes",
    "events",
)


def _marts_suite() -> tuple[Check, ...]:
    heat, daily, trend = "marts.activity_heatmap", "marts.engagement_daily", "marts.trending_topics"
    scores, queue = "moderation.scores", "marts.moderation_queue"
    checks: list[Check] = [
        _not_null(heat, "source", "every heatmap cell names its source"),
        _not_null(heat, "weekday", "every heatmap cell has a weekday"),
        _between(heat, "weekday", "weekday is ISO 1 (Monday) to 7 (Sunday)", min_value=1, max_value=7),
        _not_null(heat, "hour", "every heatmap cell has an hour"),
        _between(heat, "hour", "hour of day is 0 to 23", min_value=0, max_value=23),
        _not_null(heat, "events", "every heatmap cell has an event count"),
        _between(heat, "events", "event counts are not negative", min_value=0),
        _not_null(daily, "day", "every daily row has a day"),
    ]
    checks += [_between(daily, c, f"{c} is not negative", min_value=0) for c in ENGAGEMENT_DAILY_COUNTS]
    checks += [
        _between(trend, "volume", "a trending topic was seen at least once in its week", min_value=1),
        _not_null(trend, "z_score", "every trending topic has a z-score"),
    ]
    checks += [
        _between(scores, label, f"{label} is a probability in [0, 1] (nulls allowed)", min_value=0, max_value=1)
        for label in SCORE_LABELS
    ]
    checks += _analytics_marts_checks()
    checks += [
        _not_null(queue, "content_id", "every queued item names its content"),
        _not_null(queue, "severity", "every queued item has a severity"),
        _between(queue, "severity", "severity is not negative", min_value=0),
        _between(queue, "max_score", "the top label score is a probability in [0, 1]", min_value=0, max_value=1),
    ]
    return tuple(checks)


def _analytics_marts_checks() -> list[Check]:
    """Checks on the analytics marts of issue 4 (see transforms/README.md for each formula)."""
    daily, trend = "marts.engagement_daily", "marts.trending_topics"
    timeline, times, slots = "marts.activity_timeline", "marts.response_times", "marts.response_times_by_slot"
    best, hot = "marts.best_time_to_post", "marts.hot_content"
    return [
        Check(
            daily,
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": "mau", "column_B": "dau", "or_equal": True},
            True,
            "MAU (30-day distinct active users) is never below DAU",
        ),
        Check(
            daily,
            "ExpectColumnPairValuesAToBeGreaterThanB",
            {"column_A": "mau", "column_B": "wau", "or_equal": True},
            True,
            "MAU (30 days) is never below WAU (7 days)",
        ),
        _between(
            daily, "stickiness", "stickiness DAU/MAU is a share in [0, 1] (null without MAU)", min_value=0, max_value=1
        ),
        _between(
            daily,
            "response_rate",
            "response rate is a share in [0, 1] (null without threads)",
            min_value=0,
            max_value=1,
        ),
        _in_set(trend, "period", ("day", "week"), "trending periods are days or weeks"),
        _between(trend, "growth", "growth is a positive ratio", min_value=0),
        _between(timeline, "events", "a timeline bucket holds at least one item", min_value=1),
        _between(times, "hours_to_first_response", "a response never precedes its thread", min_value=0),
        _between(times, "hours_to_first_answer", "an answer never precedes its thread", min_value=0),
        _between(slots, "never_answered_share", "never-answered share is in [0, 1]", min_value=0, max_value=1),
        _between(best, "response_share", "response share is in [0, 1]", min_value=0, max_value=1),
        _between(best, "response_share_wilson_low", "the Wilson lower bound is in [0, 1]", min_value=0, max_value=1),
        _between(best, "engagement_ci_low", "the engagement lower bound is not negative", min_value=0),
        _not_null(hot, "hot_score", "every thread root has a hot score"),
        _between(hot, "hot_score", "hot scores are not negative", min_value=0),
    ]


STAGING_SUITE: tuple[Check, ...] = _staging_suite()
"""Checks on the incoming canonical batch before it is upserted into ``staging.*``."""

MARTS_SUITE: tuple[Check, ...] = _marts_suite()
"""Checks on the marts' columns and ``moderation.scores``; :func:`marts_suite` adds the grains."""

ENGAGEMENT_DAILY_VOLUME = "marts.engagement_daily_volume"
"""The frame of the marts' volume check: one row per source of ``marts.engagement_daily`` with
``days`` (its rows) and ``max_days``, the days that can hold activity: from the source's first
content or member sign-up in staging to the validation day, both counted, plus one day for
vote dates truncated to the UTC day and one for the community's time zone, i.e.
``date_diff('day', least(first content, first sign-up)::date, today) + 3`` (no content and no
members: from the timestamp floor). Built by ``pulse.steps.validate_marts``."""

MARTS_VOLUME_SUITE: tuple[Check, ...] = (
    Check(
        ENGAGEMENT_DAILY_VOLUME,
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": "max_days", "column_B": "days", "or_equal": True},
        True,
        "engagement_daily has no day before the source's first content or member (events dated 0001-01-01 "
        "on a 2014 post once grew it from about a thousand rows to over 700,000)",
    ),
)
"""Volume checks on the marts, run with :func:`marts_suite` by the pipeline (issue 14)."""

SUITES: dict[str, tuple[Check, ...]] = {"staging": STAGING_SUITE, "marts": MARTS_SUITE}
"""Suites by the name stored in ``quality.validation_results.suite``."""


def grain_checks(grains: Mapping[str, Sequence[str]]) -> tuple[Check, ...]:
    """One critical uniqueness check per mart: ``marts.<name>`` has one row per grain value.

    Args:
        grains: ``{mart name: the columns one row is unique on}``, e.g.
            ``{"engagement_daily": ("source", "day")}`` (``transforms.runner.MART_GRAINS``).

    Raises:
        ValueError: a mart with an empty grain.
    """
    empty = sorted(name for name, columns in grains.items() if not columns)
    if empty:
        raise ValueError(f"marts without a grain: {empty}")
    return tuple(
        _unique(f"marts.{name}", columns, f"the grain: one row per {' x '.join(columns)}")
        for name, columns in grains.items()
    )


def marts_suite(grains: Mapping[str, Sequence[str]]) -> tuple[Check, ...]:
    """The marts suite the pipeline runs: :data:`MARTS_SUITE` plus :func:`grain_checks` of ``grains``."""
    return MARTS_SUITE + grain_checks(grains)


def with_reference_flag(
    frame: pl.DataFrame,
    existing: pl.DataFrame,
    *,
    on: Sequence[str] = ("source", "content_id"),
    flag: str = "content_exists",
) -> pl.DataFrame:
    """Add a boolean column ``flag``: does the row's ``on`` key occur in ``existing``?

    For the staging suite: ``existing`` is the ``(source, content_id)`` of ``staging.content``
    plus those of the batch. Null keys get False. Row order of ``frame`` is kept. A hash join,
    so it scales to millions of ids (unlike a GE ``value_set``).
    """
    keys = existing.select(list(on)).unique().with_columns(pl.lit(True).alias(flag))
    out = frame.join(keys, on=list(on), how="left", maintain_order="left")
    return out.with_columns(pl.col(flag).fill_null(False))
