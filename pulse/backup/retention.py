"""Grandfather-father-son retention of backups (``PULSE_BACKUP_KEEP_DAILY|WEEKLY|MONTHLY|YEARLY``)
and ``prune``, which applies it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pulse.settings import Settings
from pulse.backup.base import (
    MANIFEST,
    utcnow,
)
from pulse.backup.storage import (
    _id_time,
    backup_ids,
    destination,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Retention: grandfather-father-son


def gfs_keep(
    times: Iterable[datetime], *, daily: int = 7, weekly: int = 4, monthly: int = 12, yearly: int = 0
) -> set[datetime]:
    """The backup times to keep under grandfather-father-son retention.

    As restic's ``forget --keep-daily/--keep-weekly/--keep-monthly/--keep-yearly``: walking from
    the newest backup back, keep the newest backup of each of the last ``daily`` days that have
    backups, of the last ``weekly`` ISO weeks, ``monthly`` calendar months and ``yearly`` years
    (a backup may count for several). The newest backup is always kept.
    """
    ordered = sorted(set(times), reverse=True)
    keep: set[datetime] = set(ordered[:1])
    buckets: list[tuple[int, Callable[[datetime], Any]]] = [
        (daily, lambda t: t.date()),
        (weekly, lambda t: t.isocalendar()[:2]),
        (monthly, lambda t: (t.year, t.month)),
        (yearly, lambda t: t.year),
    ]
    for n, bucket in buckets:
        seen: set[Any] = set()
        for t in ordered:
            if len(seen) >= n:
                break
            b = bucket(t)
            if b not in seen:
                seen.add(b)
                keep.add(t)
    return keep


def prune_backups(
    settings: Settings, dest: str | Path, *, now: datetime | None = None, dry_run: bool = False
) -> dict[str, list[str]]:
    """Delete the backups :func:`gfs_keep` does not keep (``settings.backup_keep_*``), and unfinished
    backups older than a day (a crashed ``create``).

    Returns:
        ``{"kept": [...], "deleted": [...]}`` backup ids.
    """
    fs, root = destination(dest, settings)
    now = now or utcnow()
    ids = backup_ids(fs, root)
    complete = [b for b in ids if fs.exists(f"{root}/{b}/{MANIFEST}")]
    by_time = {_id_time(b): b for b in complete}
    keep_times = gfs_keep(
        by_time,
        daily=settings.backup_keep_daily,
        weekly=settings.backup_keep_weekly,
        monthly=settings.backup_keep_monthly,
        yearly=settings.backup_keep_yearly,
    )
    kept = sorted(by_time[t] for t in keep_times)
    stale = [b for b in ids if b not in complete and now - _id_time(b) > timedelta(days=1)]
    deleted = sorted([b for b in complete if b not in kept] + stale)
    if not dry_run:
        for b in deleted:
            fs.rm(f"{root}/{b}", recursive=True)
    return {"kept": kept, "deleted": deleted}
