"""Moderation insights: aggregate figures over the queue and moderators' decisions (no item text).

Pure functions over polars frames, used by the Moderation insights page and tested directly.

Inputs (column names as in ``marts.moderation_queue`` and ``ReviewStore.decisions()``):

- ``queue``: one row per flagged item: ``source``, ``content_id``, ``created_at`` (naive UTC),
  ``tags`` (list of strings), ``flagged_labels`` (list), and one Float64 column per label score.
- ``decisions``: the audit log: ``source``, ``content_id``, ``action``, ``to_state``,
  ``actor``, ``decided_at`` (naive UTC), ``item_version``.

*Backlog* (:func:`backlog`): the items still open (live state ``pending`` or ``escalated``),
the age of the oldest one, and how many have waited longer than the response-time target
(SLA, ``sla_hours``), all as of a given moment.

Terms: an item is *decided* when its latest decision moved it to ``approved`` or ``removed``
(``escalated`` is still open). A flag is *upheld* when the decided item was removed.
*Precision at threshold t* for a label = upheld / decided among decided items whose score for
that label is >= t (the share of the model's flags that moderators agreed with; Manning,
Raghavan & Schütze, *Introduction to Information Retrieval*, 2008, §8.3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

FINAL_STATES: tuple[str, ...] = ("approved", "removed")
"""States that close an item (a decision was made about the flag)."""
OPEN_STATES: tuple[str, ...] = ("pending", "escalated")
"""States of items still waiting for a decision (the backlog)."""
DEFAULT_SLA_HOURS = 24.0
"""Response-time target when the settings name none: an item should be decided within a day."""


@dataclass(frozen=True)
class Backlog:
    """The open items of the review queue at one moment.

    Attributes:
        open: items in state ``pending`` or ``escalated``; ``escalated`` of them escalated.
        oldest_hours: hours since the oldest open item was created (None when none is open).
        past_sla: open items created more than ``sla_hours`` before ``as_of``.
        sla_hours: the response-time target used.
        as_of: the moment (naive UTC).
    """

    open: int
    escalated: int
    oldest_hours: float | None
    past_sla: int
    sla_hours: float
    as_of: datetime

    def line(self) -> str:
        """One line for a KPI strip, e.g. ``"194 open (3 escalated) · oldest 12.5 d · 190 past the 24 h target"``."""
        if not self.open:
            return "No open items: the review queue is empty."
        oldest = self.oldest_hours or 0.0
        age = f"{oldest:.1f} h" if oldest < 48 else f"{oldest / 24:.1f} d"
        return (
            f"{self.open:,} open ({self.escalated:,} escalated) · oldest {age} · "
            f"{self.past_sla:,} past the {self.sla_hours:g} h response-time target"
        )


def backlog(queue: pl.DataFrame, *, sla_hours: float, as_of: datetime) -> Backlog:
    """Open items, the oldest one's age and the items past the response-time target.

    Args:
        queue: the queue with its live ``state`` and ``created_at`` (naive UTC), one row per item
            (``dashboards.review_ui.with_live_states``).
        sla_hours: the response-time target, hours (> 0).
        as_of: the moment to measure at (naive UTC; usually now).

    Raises:
        ValueError: ``sla_hours`` <= 0.
    """
    if sla_hours <= 0:
        raise ValueError(f"sla_hours must be > 0, got {sla_hours}")
    waiting = queue.filter(pl.col("state").is_in(OPEN_STATES)) if queue.height else queue
    if waiting.is_empty():
        return Backlog(0, 0, None, 0, float(sla_hours), as_of)
    hours = waiting.select(
        ((pl.lit(as_of) - pl.col("created_at")).dt.total_seconds() / 3600.0).clip(lower_bound=0.0).alias("h")
    )["h"]
    return Backlog(
        open=waiting.height,
        escalated=int((waiting["state"] == "escalated").sum()),
        oldest_hours=float(hours.max()),
        past_sla=int((hours > sla_hours).sum()),
        sla_hours=float(sla_hours),
        as_of=as_of,
    )


def flag_volume(queue: pl.DataFrame, every: str = "1d") -> pl.DataFrame:
    """Flagged items per period of their creation time.

    Args:
        queue: flagged items with ``created_at``.
        every: a polars duration string (``1d`` days, ``1w`` weeks).

    Returns:
        ``period`` (datetime, start of the period), ``flags`` (count), ascending by period.
    """
    if queue.is_empty():
        return pl.DataFrame(schema={"period": pl.Datetime("us"), "flags": pl.UInt32})
    return (
        queue.select(pl.col("created_at").dt.truncate(every).alias("period"))
        .group_by("period")
        .agg(pl.len().alias("flags"))
        .sort("period")
    )


def flags_by_tag(queue: pl.DataFrame, top: int = 15) -> pl.DataFrame:
    """Flagged items per tag (an item with several tags counts once for each; untagged items
    count under ``(no tag)``).

    Returns:
        ``tag``, ``flags``: the ``top`` tags by count, descending (ties by tag name).
    """
    if queue.is_empty():
        return pl.DataFrame(schema={"tag": pl.String, "flags": pl.UInt32})
    tags = queue.select(
        pl.when(pl.col("tags").list.len() > 0).then(pl.col("tags")).otherwise(pl.lit(["(no tag)"])).alias("tag")
    ).explode("tag")
    return tags.group_by("tag").agg(pl.len().alias("flags")).sort(["flags", "tag"], descending=[True, False]).head(top)


def latest_states(decisions: pl.DataFrame) -> pl.DataFrame:
    """The latest decision per item: ``source``, ``content_id``, ``state``, ``decided_at``,
    ``first_decided_at`` (the item's first decision of any kind)."""
    if decisions.is_empty():
        return pl.DataFrame(
            schema={"source": pl.String, "content_id": pl.String, "state": pl.String,
                    "decided_at": pl.Datetime("us"), "first_decided_at": pl.Datetime("us")}
        )  # fmt: skip
    return (
        decisions.sort(["decided_at", "item_version"])
        .group_by("source", "content_id")
        .agg(
            pl.col("to_state").last().alias("state"),
            pl.col("decided_at").last(),
            pl.col("decided_at").min().alias("first_decided_at"),
        )
    )


@dataclass(frozen=True)
class QueueAge:
    """Time from an item's creation to its first decision, in hours.

    Attributes:
        n: decided items with a known creation time.
        p50_hours, p90_hours: median and 90th percentile (linear interpolation, as
            ``numpy.percentile``'s default); None when ``n == 0``.
    """

    n: int
    p50_hours: float | None
    p90_hours: float | None


def queue_age(queue: pl.DataFrame, decisions: pl.DataFrame) -> QueueAge:
    """Time to first decision (hours) over the queue's items that have one.

    ``age = first decided_at - created_at`` per item (negative ages, from clock skew, are
    clipped to 0). p50 / p90 use linear interpolation between order statistics.
    """
    firsts = latest_states(decisions).select("source", "content_id", "first_decided_at")
    joined = queue.select("source", "content_id", "created_at").join(firsts, on=["source", "content_id"], how="inner")
    hours = joined.select(
        ((pl.col("first_decided_at") - pl.col("created_at")).dt.total_seconds() / 3600.0)
        .clip(lower_bound=0.0)
        .alias("h")
    )["h"].drop_nulls()
    if hours.is_empty():
        return QueueAge(0, None, None)
    return QueueAge(
        n=hours.len(),
        p50_hours=float(hours.quantile(0.5, interpolation="linear")),
        p90_hours=float(hours.quantile(0.9, interpolation="linear")),
    )


def decisions_per_moderator(decisions: pl.DataFrame) -> pl.DataFrame:
    """Decisions per moderator and action (every row of the log counts, undo and reopen too,
    so ``total`` sums to the audit log's count).

    Returns:
        ``actor``, ``approve``, ``remove``, ``escalate``, ``reopen``, ``undo``, ``total``, by
        ``total`` descending.
    """
    actions = ("approve", "remove", "escalate", "reopen", "undo")
    if decisions.is_empty():
        return pl.DataFrame(schema={"actor": pl.String, **{a: pl.UInt32 for a in actions}, "total": pl.UInt32})
    return (
        decisions.group_by("actor")
        .agg(*[(pl.col("action") == a).sum().cast(pl.UInt32).alias(a) for a in actions], pl.len().alias("total"))
        .sort(["total", "actor"], descending=[True, False])
    )


def decided_items(queue: pl.DataFrame, decisions: pl.DataFrame, labels: Sequence[str]) -> pl.DataFrame:
    """Queue items whose latest state is final, with their label scores and ``upheld``.

    Returns:
        ``source``, ``content_id``, ``state``, ``upheld`` (state == removed), and the columns
        ``labels`` (scores; null when the model did not score that label).
    """
    states = latest_states(decisions).filter(pl.col("state").is_in(FINAL_STATES))
    present = [label for label in labels if label in queue.columns]
    return (
        queue.select("source", "content_id", *present)
        .join(states.select("source", "content_id", "state"), on=["source", "content_id"], how="inner")
        .with_columns(upheld=pl.col("state") == "removed")
    )


def agreement(decided: pl.DataFrame, thresholds: Mapping[str, float]) -> pl.DataFrame:
    """Model–moderator agreement per label at the current flag threshold.

    Args:
        decided: output of :func:`decided_items`.
        thresholds: the flag threshold per label (``Settings.thresholds``).

    Returns:
        ``label``, ``threshold``, ``flagged`` (decided items with score >= threshold),
        ``upheld`` (of those, removed), ``precision`` (upheld / flagged; null when flagged == 0).
    """
    rows = []
    for label, threshold in thresholds.items():
        if label not in decided.columns:
            continue
        hit = decided.filter(pl.col(label) >= threshold)
        flagged, upheld = hit.height, int(hit["upheld"].sum())
        rows.append((label, float(threshold), flagged, upheld, upheld / flagged if flagged else None))
    return pl.DataFrame(
        rows,
        schema={"label": pl.String, "threshold": pl.Float64, "flagged": pl.Int64, "upheld": pl.Int64,
                "precision": pl.Float64},
        orient="row",
    )  # fmt: skip


@dataclass(frozen=True)
class ThresholdSuggestion:
    """A suggested flag threshold for one label.

    Attributes:
        label: the label.
        threshold: the smallest candidate threshold reaching the target precision with at least
            ``min_decisions`` decided items above it; None when there is too little data or no
            threshold reaches the target.
        precision: precision at ``threshold`` (None with it).
        n: decided items at or above ``threshold`` (0 with None).
        reason: a sentence for the page explaining the outcome.
    """

    label: str
    threshold: float | None
    precision: float | None
    n: int
    reason: str


def suggest_threshold(
    decided: pl.DataFrame, label: str, *, target: float = 0.9, min_decisions: int = 20
) -> ThresholdSuggestion:
    """Smallest threshold t (among the decided items' scores) with precision(t) >= ``target``
    and at least ``min_decisions`` decided items scoring >= t.

    precision(t) = removed / decided among decided items with score >= t. Only items that
    reached the queue are decided, so a suggestion below the lowest decided score is never
    made (nothing is known about items the model did not flag).

    Raises:
        ValueError: ``target`` not in (0, 1] or ``min_decisions < 1``.
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target precision must be in (0, 1], got {target}")
    if min_decisions < 1:
        raise ValueError(f"min_decisions must be >= 1, got {min_decisions}")
    if label not in decided.columns:
        return ThresholdSuggestion(label, None, None, 0, f"No {label} scores among the decided items.")
    scored = decided.select(pl.col(label).alias("s"), "upheld").drop_nulls("s").sort("s", descending=True)
    if scored.height < min_decisions:
        return ThresholdSuggestion(
            label, None, None, 0,
            f"Too little data: {scored.height} decided items with a {label} score; at least {min_decisions} needed.",
        )  # fmt: skip
    # cumulative counts from the top score down: for the k-th highest score s_k, the items >= s_k
    cum = scored.with_columns(n=pl.int_range(1, scored.height + 1), up=pl.col("upheld").cast(pl.Int64).cum_sum())
    # ties: keep the last row of each distinct score (it counts every item with that score)
    at = cum.group_by("s", maintain_order=True).last().with_columns(precision=pl.col("up") / pl.col("n"))
    ok = at.filter((pl.col("n") >= min_decisions) & (pl.col("precision") >= target))
    if ok.is_empty():
        best = at.filter(pl.col("n") >= min_decisions)["precision"].max()
        return ThresholdSuggestion(
            label, None, None, 0,
            f"No threshold reaches precision {target:.0%} with at least {min_decisions} decisions "
            f"(best: {best:.0%}).",
        )  # fmt: skip
    row = ok.sort("s").row(0, named=True)
    return ThresholdSuggestion(
        label, float(row["s"]), float(row["precision"]), int(row["n"]),
        f"At {row['s']:.2f}, {row['precision']:.0%} of {row['n']} decided flags were upheld.",
    )  # fmt: skip
