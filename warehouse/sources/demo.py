"""A built-in, deterministic, synthetic demo community: "The Brew Kettle", a home-brewing forum.

:func:`generate_demo` returns a canonical :class:`~warehouse.canonical.Extract` (``source="demo"``,
``synthetic=True``) that looks like a real, lively forum in the dashboards:

- **Rhythms** in the community's local time, DST-correct: quiet nights (1-6 am), peaks at lunch
  (12-13) and in the evening (19-22), weekdays busier than weekends (Sunday ~60% of Tuesday), a
  gentle growth (+50% over the period) and day-to-day noise. Activity is generated on a grid of
  UTC buckets whose local hour and weekday come from :mod:`zoneinfo`, so a DST change shifts the
  UTC hours of the peaks by one while the local peaks stay put.
- **Users** (~800 x ``scale``): ~15% joined before the period, the rest join during it; posting
  and voting weights are long-tailed (lognormal), so a few power users write much of it.
  Nobody writes or votes before they joined.
- **Content**: ~12 posts a day at ``scale=1`` (kind ``post``, with title and 1-3 tags) and ~4
  replies per post (kind ``reply``, to the post or to an earlier reply of the thread, minutes to
  days later). About 2% of replies are abusive (insults and profanity, several by a handful of
  repeat offenders); :func:`abusive_ids` names them. The frames carry no label column.
- **Tags**: 40 topics with Zipf popularity plus the bursts in :data:`INJECTED_BURSTS` (an
  emerging tag and two small tags spiking), which the trending-topics mart should surface.
- **Engagement events** (``time_precision="exact"``): upvotes, downvotes, favorites, accepts and
  views, decaying after the content's creation and following the same daily rhythm.
  ``content.score`` is upvotes - downvotes and a post's ``view_count`` is its number of view
  events, both over the whole generated history (like a data dump's snapshot).

Everything is drawn from ``numpy.random.default_rng(seed)``: no global random state, no wall
clock. The whole history is generated once per argument set (cached) and then cut to the data
interval, so consecutive windows partition the unbounded extract exactly.

This module holds the generator; its vocabulary (tags with their topics and terms, title, post
and reply templates, advice phrases, edit notes, abusive openers and jabs, name parts) is data
in ``demo_vocabulary.toml`` beside it, read once at import.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from warehouse.canonical import (
    STREAMS,
    Extract,
    QuarantineLog,
    StreamCounts,
    conform,
    content_hash,
)

SOURCE = "demo"
DESCRIPTION = "Synthetic demo community: The Brew Kettle, a home-brewing forum (generated, not real people)"
DEFAULT_START = date(2026, 3, 2)
DEFAULT_DAYS = 182
DEFAULT_TIMEZONE = "America/New_York"

BUCKET_MINUTES = 15  # every IANA offset in use is a multiple of 15 minutes
_US_PER_MIN = 60_000_000
_BUCKET_US = BUCKET_MINUTES * _US_PER_MIN
_US_PER_DAY = 24 * 60 * _US_PER_MIN

USERS_PER_SCALE = 800
POSTS_PER_DAY = 12.0
MEAN_REPLIES_PER_POST = 4.0
ABUSIVE_REPLY_SHARE = 0.022
GROWTH_OVER_PERIOD = 0.5  # activity at the end is 1.5x the start


class Burst(NamedTuple):
    """A topic burst injected into the demo, in the community's local calendar.

    Attributes:
        tag: the tag that bursts.
        start, end: first and last local day of the burst (both inclusive).
        multiplier: for ``kind="spike"``, the tag's volume during the burst relative to its usual
            volume; for ``kind="emerging"`` (a tag never used before ``start``), relative to the
            usual volume of a median tag, which is also the level it settles at afterwards.
        kind: ``"spike"`` or ``"emerging"``.
    """

    tag: str
    start: date
    end: date
    multiplier: float
    kind: str


INJECTED_BURSTS: tuple[Burst, ...] = (
    Burst("hop-water", date(2026, 5, 11), date(2026, 5, 24), 8.0, "emerging"),
    Burst("fruit-beer", date(2026, 6, 15), date(2026, 6, 28), 7.0, "spike"),
    Burst("mead", date(2026, 7, 27), date(2026, 8, 2), 8.0, "spike"),  # Mead Day, 1 Aug 2026
)
"""The bursts for the default ``start``; :func:`bursts_for` shifts them for another start."""

# Relative activity by local hour (0-23), weekdays and weekends; each is normalised to mean 1.
_HOURLY_WEEKDAY = np.array(
    [0.35, 0.18, 0.10, 0.07, 0.07, 0.10, 0.25, 0.50, 0.75, 0.85, 0.90, 1.00,
     1.35, 1.30, 0.95, 0.90, 0.90, 0.95, 1.10, 1.45, 1.60, 1.50, 1.10, 0.65]
)  # fmt: skip
_HOURLY_WEEKEND = np.array(
    [0.45, 0.25, 0.12, 0.07, 0.06, 0.07, 0.12, 0.25, 0.50, 0.80, 1.05, 1.15,
     1.20, 1.20, 1.15, 1.10, 1.10, 1.10, 1.15, 1.30, 1.40, 1.35, 1.05, 0.70]
)  # fmt: skip
# Relative daily volume, Monday (0) to Sunday (6).
_WEEKDAY = np.array([0.95, 1.00, 0.98, 0.95, 0.82, 0.66, 0.60])

# Words and templates (tags with their topics and terms, titles, phrases, reply templates,
# abusive openers and jabs, name parts) live in demo_vocabulary.toml beside this file, read once.
VOCABULARY_FILE = Path(__file__).with_name("demo_vocabulary.toml")
_VOCAB: dict[str, Any] = tomllib.loads(VOCABULARY_FILE.read_text(encoding="utf-8"))

# Tags in order of popularity (Zipf weights 1/rank), each with a topic phrase and some terms.
_TAG_VOCAB: dict[str, tuple[str, tuple[str, ...]]] = {
    tag: (v["topic"], tuple(v["terms"])) for tag, v in _VOCAB["tags"].items()
}
TAGS: tuple[str, ...] = tuple(_TAG_VOCAB)
"""All tags the demo uses: the 40 usual ones in order of popularity, then the emerging ones."""
_N_TAGS_P = (0.45, 0.35, 0.20)  # share of posts with 1, 2, 3 tags
_EMERGING = frozenset(b.tag for b in INJECTED_BURSTS if b.kind == "emerging")
_USUAL_TAGS = tuple(t for t in TAGS if t not in _EMERGING)

# Text templates and the words that fill their slots (see the file's header for the slots).
_Q_TITLES = tuple(_VOCAB["posts"]["question_titles"])
_D_TITLES = tuple(_VOCAB["posts"]["discussion_titles"])
_INTROS = tuple(_VOCAB["posts"]["intros"])
_DETAILS = tuple(_VOCAB["posts"]["details"])
_Q_CLOSES = tuple(_VOCAB["posts"]["question_closes"])
_D_CLOSES = tuple(_VOCAB["posts"]["discussion_closes"])
_REPLIES = tuple(_VOCAB["replies"]["advice"])
_REPLIES_HEATED = tuple(_VOCAB["replies"]["heated"])
_REPLIES_OP = tuple(_VOCAB["replies"]["thread_author"])
_REPLIES_CIVIL = tuple(_VOCAB["replies"]["civil"])
_ADVICE = tuple(_VOCAB["slots"]["advice"])
_FLAVORS = tuple(_VOCAB["slots"]["flavors"])
_ORDINALS = tuple(_VOCAB["slots"]["ordinals"])
_EDIT_NOTES_POST = tuple(_VOCAB["edit_notes"]["post"])
_EDIT_NOTES_REPLY = tuple(_VOCAB["edit_notes"]["reply"])
ABUSIVE_OPENERS: tuple[str, ...] = tuple(_VOCAB["abusive"]["openers"])
"""The first sentence of every abusive reply the demo writes (and of no other text)."""
_ABUSIVE_JABS = tuple(_VOCAB["abusive"]["jabs"])
_NAME_ADJ = tuple(_VOCAB["names"]["adjectives"])
_NAME_NOUN = tuple(_VOCAB["names"]["nouns"])


def _cap(s: str) -> str:
    """``s`` with its first letter upper-cased (``"IPAs"`` stays as it is)."""
    return s[:1].upper() + s[1:]


# --- calendar -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    """The period as a grid of UTC buckets with their local attributes.

    ``t0_us``/``t1_us`` are local midnight of ``start`` and of ``start + days`` as UTC
    microseconds since the epoch; arrays have one entry per ``BUCKET_MINUTES`` bucket.
    """

    t0_us: int
    t1_us: int
    bucket_us: np.ndarray  # int64, bucket start (UTC µs)
    day: np.ndarray  # int64, local day index from start
    rhythm: np.ndarray  # float64, hourly x weekday shape (no trend): acceptance for delays
    intensity: np.ndarray  # float64, expected usual posts per bucket (rhythm, trend, daily noise)


def _local_midnight_us(d: date, tz: ZoneInfo) -> int:
    """Local midnight starting day ``d`` in ``tz``, as UTC microseconds since the epoch."""
    return int(datetime.combine(d, time(0), tzinfo=tz).timestamp()) * 1_000_000


def _build_calendar(rng: np.random.Generator, start: date, days: int, tz: ZoneInfo, posts_per_day: float) -> _Calendar:
    """Bucket grid with its rhythm and expected posts per bucket (summing to posts_per_day x days)."""
    t0 = _local_midnight_us(start, tz)
    t1 = _local_midnight_us(start + timedelta(days=days), tz)
    n = -(-(t1 - t0) // _BUCKET_US)
    bucket_us = t0 + _BUCKET_US * np.arange(n, dtype=np.int64)
    hours = np.empty(n, dtype=np.int64)
    weekday = np.empty(n, dtype=np.int64)
    day = np.empty(n, dtype=np.int64)
    for i, ts in enumerate((bucket_us // 1_000_000).tolist()):
        local = datetime.fromtimestamp(ts, tz)
        hours[i] = local.hour
        weekday[i] = local.weekday()
        day[i] = (local.date() - start).days
    day = np.clip(day, 0, days - 1)
    weekend = weekday >= 5
    weekday_shape, weekend_shape = _HOURLY_WEEKDAY / _HOURLY_WEEKDAY.mean(), _HOURLY_WEEKEND / _HOURLY_WEEKEND.mean()
    hourly = np.where(weekend, weekend_shape[hours], weekday_shape[hours])
    rhythm = hourly * _WEEKDAY[weekday]
    trend = 1.0 + GROWTH_OVER_PERIOD * (np.arange(days) + 0.5) / days
    noise = rng.gamma(25.0, 1.0 / 25.0, size=days)
    base = rhythm * (trend * noise)[day]
    intensity = base * (posts_per_day * days / base.sum())
    return _Calendar(t0, t1, bucket_us, day, rhythm, intensity)


def _times_from_intensity(rng: np.random.Generator, cal: _Calendar, expected: np.ndarray) -> np.ndarray:
    """Poisson counts per bucket with the given expectations, uniform within the bucket; sorted UTC µs."""
    counts = rng.poisson(expected)
    starts = np.repeat(cal.bucket_us, counts)
    t = starts + (rng.random(starts.size) * _BUCKET_US).astype(np.int64)
    return np.sort(np.minimum(t, cal.t1_us - 1))


def _lognormal_minutes(rng: np.random.Generator, n: int, mixture: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """Delays in minutes from a mixture of lognormals given as (weight, median minutes, sigma)."""
    weights = np.array([m[0] for m in mixture])
    comp = rng.choice(len(mixture), size=n, p=weights / weights.sum())
    med = np.array([m[1] for m in mixture])[comp]
    sig = np.array([m[2] for m in mixture])[comp]
    return med * np.exp(sig * rng.standard_normal(n))


def _delayed_times(
    rng: np.random.Generator,
    cal: _Calendar,
    base_us: np.ndarray,
    mixture: tuple[tuple[float, float, float], ...],
    min_minutes: float = 0.5,
    rounds: int = 25,
) -> tuple[np.ndarray, np.ndarray]:
    """Times after ``base_us`` with a delay mixture, thinned to the local daily/weekly rhythm.

    Delays are ``min_minutes`` plus a draw from the mixture (continuous, so no two items tie).
    A candidate that falls in a quiet hour is redrawn (acceptance rhythm/max), so follow-ups keep
    the community's rhythm; one that falls after the period's end would lie in the future and is
    dropped. Returns ``(times_us, ok)``: ``ok`` is false for dropped items.
    """
    n = base_us.size
    out = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    pending = np.arange(n)
    accept_scale = 1.0 / cal.rhythm.max()
    for _ in range(rounds):
        if pending.size == 0:
            break
        delay = min_minutes + _lognormal_minutes(rng, pending.size, mixture)
        cand = base_us[pending] + (delay * _US_PER_MIN).astype(np.int64)
        future = cand >= cal.t1_us
        b = np.clip((cand - cal.t0_us) // _BUCKET_US, 0, cal.rhythm.size - 1)
        accept = ~future & (rng.random(pending.size) < cal.rhythm[b] * accept_scale)
        out[pending[accept]] = cand[accept]
        ok[pending[accept]] = True
        pending = pending[~accept & ~future]
    return out, ok


# --- bursts and tags ----------------------------------------------------------------------------


def bursts_for(start: date) -> tuple[Burst, ...]:
    """:data:`INJECTED_BURSTS` moved by ``start - DEFAULT_START`` days (unchanged for the default)."""
    shift = start - DEFAULT_START
    return tuple(b._replace(start=b.start + shift, end=b.end + shift) for b in INJECTED_BURSTS)


def _tag_day_weights(start: date, days: int) -> np.ndarray:
    """Usual tag weights per local day, shape (days, len(TAGS)): Zipf 1/rank for the usual tags;
    an emerging tag weighs like a median tag from its burst's first day on and 0 before."""
    zipf = np.array([1.0 / (TAGS.index(t) + 1) if t in _USUAL_TAGS else 0.0 for t in TAGS])
    median_w = float(np.median(zipf[zipf > 0]))
    w = np.tile(zipf, (days, 1))
    for b in bursts_for(start):
        if b.kind == "emerging":
            first = (b.start - start).days
            w[:, TAGS.index(b.tag)] = np.where(np.arange(days) >= first, median_w, 0.0)
    return w


def _tag_presence(w: np.ndarray) -> np.ndarray:
    """P(a post carries each tag) per day under :func:`_draw_tags`, same shape as ``w``."""
    p = w / w.sum(axis=1, keepdims=True)
    return sum(share * (1.0 - (1.0 - p) ** k) for k, share in zip((1, 2, 3), _N_TAGS_P, strict=False))


def _burst_posts(rng: np.random.Generator, cal: _Calendar, start: date, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Extra posts that make each burst's tag ``multiplier`` times as busy as usual.

    For each burst the number of extra posts is ``(multiplier - 1)`` times the tag's expected
    usual volume over the burst days (rounded), spread over those days like ordinary posts. A
    spike fades (its extra posts per day fall linearly from 1.5x to 0.5x their mean over the
    burst); an emerging tag's burst is flat. Returns ``(times_us, tag_index)`` of the extra posts.
    """
    expected_per_day = np.bincount(cal.day, weights=cal.intensity, minlength=w.shape[0])
    presence = _tag_presence(w)
    times, tags = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for b in bursts_for(start):
        j = TAGS.index(b.tag)
        in_burst = (cal.day >= (b.start - start).days) & (cal.day <= (b.end - start).days)
        days = np.unique(cal.day[in_burst])
        n = round((b.multiplier - 1.0) * float((expected_per_day[days] * presence[days, j]).sum()))
        if n == 0:
            continue
        profile = 1.0
        if b.kind == "spike" and days.size > 1:
            profile = 1.5 - (cal.day - days[0]) / (days.size - 1)
        weights = np.where(in_burst, cal.intensity * profile, 0.0)
        bucket = rng.choice(cal.bucket_us.size, size=n, p=weights / weights.sum())
        t = cal.bucket_us[bucket] + (rng.random(n) * _BUCKET_US).astype(np.int64)
        times.append(np.minimum(t, cal.t1_us - 1))
        tags.append(np.full(n, j))
    return np.concatenate(times), np.concatenate(tags)


def _draw_tags(rng: np.random.Generator, day: np.ndarray, w: np.ndarray, forced: np.ndarray) -> list[list[str]]:
    """1-3 distinct tags per post (45/35/20%), drawn by that day's weights ``w``.

    ``forced`` holds a tag index per post to use as its first (primary) tag, or -1.
    """
    cum = np.cumsum(w, axis=1)
    n = day.size
    u = rng.random((n, 3)) * cum[day, -1][:, None]
    picks = np.stack([(cum[day] < u[:, [k]]).sum(axis=1) for k in range(3)], axis=1)
    picks = np.minimum(picks, len(TAGS) - 1)
    picks[:, 0] = np.where(forced >= 0, forced, picks[:, 0])
    n_tags = rng.choice(3, size=n, p=_N_TAGS_P) + 1
    out: list[list[str]] = []
    for row, k in zip(picks.tolist(), n_tags.tolist(), strict=False):
        tags: list[str] = []
        for j in row[:k]:
            if TAGS[j] not in tags:
                tags.append(TAGS[j])
        out.append(tags)
    return out


# --- users --------------------------------------------------------------------------------------


def _pick_users(rng: np.random.Generator, t_us: np.ndarray, created_us: np.ndarray, cum_w: np.ndarray) -> np.ndarray:
    """For each time, a user index drawn by weight among users who had joined by then.

    ``created_us`` is sorted ascending and ``cum_w`` is the cumulative weight in that order.
    """
    n_elig = np.maximum(np.searchsorted(created_us, t_us, side="right"), 1)
    u = rng.random(t_us.size) * cum_w[n_elig - 1]
    return np.minimum(np.searchsorted(cum_w, u, side="right"), n_elig - 1)


def _display_names(rng: np.random.Generator, n: int) -> list[str]:
    """Clearly fake, unique handles such as ``HoppyOtter42``, ``malty_badger`` or ``Crisp Heron``."""
    a = rng.integers(0, len(_NAME_ADJ), n).tolist()
    b = rng.integers(0, len(_NAME_NOUN), n).tolist()
    num = rng.integers(1, 100, n).tolist()
    style = rng.integers(0, 3, n).tolist()
    seen: set[str] = set()
    names: list[str] = []
    for i in range(n):
        adj, noun = _NAME_ADJ[a[i]], _NAME_NOUN[b[i]]
        name = (f"{adj}{noun}{num[i]}", f"{adj.lower()}_{noun.lower()}", f"{adj} {noun}")[style[i]]
        k = i + 1
        while name in seen:
            name, k = f"{adj}{noun}{k}", k + n
        seen.add(name)
        names.append(name)
    return names


# --- text ---------------------------------------------------------------------------------------


def _slots(r: list[int], tag: str) -> dict[str, str]:
    """Template slots for one text from a row of random integers ``r`` (len >= 12)."""
    topic, terms = _TAG_VOCAB[tag]
    term = terms[r[0] % len(terms)]
    term2 = terms[(r[0] + 1 + r[1] % (len(terms) - 1)) % len(terms)]
    advice = _ADVICE[r[2] % len(_ADVICE)]
    og = 1.040 + (r[3] % 40) / 1000
    return {
        "topic": topic,
        "Topic": _cap(topic),
        "term": term,
        "Term": _cap(term),
        "term2": term2,
        "advice": advice,
        "Advice": _cap(advice),
        "n": str(3 + r[4] % 30),
        "d": str(2 + r[5] % 12),
        "temp": str(16 + r[6] % 8),
        "years": str(1 + r[7] % 15),
        "litres": str((10, 19, 20, 23, 40)[r[8] % 5]),
        "ordinal": _ORDINALS[r[9] % len(_ORDINALS)],
        "flavor": _FLAVORS[r[10] % len(_FLAVORS)],
        "og": f"{og:.3f}",
        "fg": f"{1.008 + (r[11] % 10) / 1000:.3f}",
    }


def _post_texts(rng: np.random.Generator, primary: list[str]) -> tuple[list[str], list[str], np.ndarray]:
    """Titles, bodies and an is-question flag for posts with the given primary tags."""
    n = len(primary)
    r = rng.integers(0, 1 << 30, size=(n, 17)).tolist()
    is_q = rng.random(n) < 0.6
    titles: list[str] = []
    bodies: list[str] = []
    for i in range(n):
        s = _slots(r[i], primary[i])
        ri = r[i]
        if is_q[i]:
            title = _Q_TITLES[ri[12] % len(_Q_TITLES)]
            close = _Q_CLOSES[ri[13] % len(_Q_CLOSES)]
        else:
            title = _D_TITLES[ri[12] % len(_D_TITLES)]
            close = _D_CLOSES[ri[13] % len(_D_CLOSES)]
        parts = [_INTROS[ri[14] % len(_INTROS)], _DETAILS[ri[15] % len(_DETAILS)]]
        if ri[16] % 3 == 0:
            parts.append(_DETAILS[(ri[15] + 1 + ri[16] % 5) % len(_DETAILS)])
        parts.append(close)
        titles.append(title.format(**s))
        bodies.append(" ".join(p.format(**s) for p in parts))
    return titles, bodies, is_q


_ADVICE_STYLE, _HEATED_STYLE, _OP_STYLE, _ABUSIVE_STYLE, _CIVIL_STYLE = range(5)
_STYLE_TABLES = (_REPLIES, _REPLIES_HEATED, _REPLIES_OP, ABUSIVE_OPENERS, _REPLIES_CIVIL)


def _reply_texts(rng: np.random.Generator, tags: list[str], style: np.ndarray) -> list[str]:
    """Reply bodies for the threads' primary tags; ``style`` per reply indexes ``_STYLE_TABLES``
    (advice, heated but civil, the thread author's thanks, abusive, a call to keep it civil)."""
    tables = _STYLE_TABLES
    r = rng.integers(0, 1 << 30, size=(len(tags), 14)).tolist()
    out: list[str] = []
    for i, tag in enumerate(tags):
        s = _slots(r[i], tag)
        k = int(style[i])
        text = tables[k][r[i][12] % len(tables[k])]
        if k == _ABUSIVE_STYLE:
            text += _ABUSIVE_JABS[r[i][13] % len(_ABUSIVE_JABS)]
        out.append(text.format(**s))
    return out


# --- the whole history --------------------------------------------------------------------------


def _validate(start: date, days: int, timezone: str, scale: float) -> ZoneInfo:
    """Check the generator's arguments; return the zone. Raises as :func:`generate_demo` documents."""
    if not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    if not isinstance(start, date) or isinstance(start, datetime):
        raise TypeError(f"start must be a datetime.date, got {type(start).__name__}")
    return ZoneInfo(timezone)  # raises ZoneInfoNotFoundError for an unknown zone


def _minutes_us(minutes: np.ndarray) -> np.ndarray:
    """Minutes (float) as integer microseconds."""
    return (minutes * _US_PER_MIN).astype(np.int64)


@dataclass(frozen=True)
class _Users:
    """Members sorted by ``created_us`` (UTC µs); index i is user id ``i + 1``."""

    created_us: np.ndarray
    is_pre: np.ndarray  # joined before the period
    post_w: np.ndarray  # posting weight (lognormal, capped at 100x the median)
    cum_post_w: np.ndarray
    cum_vote_w: np.ndarray

    @property
    def n(self) -> int:
        return self.created_us.size


def _draw_users(rng: np.random.Generator, cal: _Calendar, scale: float) -> _Users:
    """~800 x scale members: 15% joined in the two years before the period, the rest during it."""
    n_users = max(round(USERS_PER_SCALE * scale), 10)
    n_pre = max(round(0.15 * n_users), 3)
    pre = cal.t0_us - (rng.random(n_pre) * 730 * _US_PER_DAY).astype(np.int64)
    bucket = rng.choice(cal.bucket_us.size, size=n_users - n_pre, p=cal.intensity / cal.intensity.sum())
    during = cal.bucket_us[bucket] + (rng.random(bucket.size) * _BUCKET_US).astype(np.int64)
    created = np.sort(np.concatenate([pre, np.minimum(during, cal.t1_us - 1)]))
    is_pre = created < cal.t0_us
    post_w = np.exp(np.minimum(1.5 * rng.standard_normal(n_users), np.log(100.0))) * np.where(is_pre, 2.0, 1.0)
    vote_w = np.exp(rng.standard_normal(n_users))
    return _Users(created, is_pre, post_w, np.cumsum(post_w), np.cumsum(vote_w))


@dataclass(frozen=True)
class _Posts:
    """Posts sorted by time: ``t`` (UTC µs), tags (primary first), author index, latent quality."""

    t: np.ndarray
    tags: list[list[str]]
    author: np.ndarray
    quality: np.ndarray

    @property
    def n(self) -> int:
        return self.t.size


def _draw_posts(rng: np.random.Generator, cal: _Calendar, start: date, days: int, users: _Users) -> _Posts:
    """The usual posts plus the bursts' extra posts (every other tag keeps its volume)."""
    tag_w = _tag_day_weights(start, days)
    usual_t = _times_from_intensity(rng, cal, cal.intensity)
    extra_t, extra_tag = _burst_posts(rng, cal, start, tag_w)
    t = np.concatenate([usual_t, extra_t])
    forced = np.concatenate([np.full(usual_t.size, -1), extra_tag])
    order = np.argsort(t, kind="stable")
    t, forced = t[order], forced[order]
    day = cal.day[np.clip((t - cal.t0_us) // _BUCKET_US, 0, cal.day.size - 1)]
    tags = _draw_tags(rng, day, tag_w, forced)
    author = _pick_users(rng, t, users.created_us, users.cum_post_w)
    return _Posts(t, tags, author, np.exp(0.7 * rng.standard_normal(t.size)))


@dataclass(frozen=True)
class _Replies:
    """Replies sorted by (thread, time): thread = post index, parent = reply index or -1 (the post)."""

    thread: np.ndarray
    t: np.ndarray
    parent: np.ndarray
    author: np.ndarray
    style: np.ndarray  # see _reply_texts
    quality: np.ndarray

    @property
    def n(self) -> int:
        return self.t.size


def _draw_reply_tree(rng: np.random.Generator, cal: _Calendar, posts: _Posts) -> tuple[np.ndarray, ...]:
    """Reply threads: a negative-binomial count per post (hot threads), times minutes to days after
    the post, each reply to the post or (35%) to an earlier reply. Returns (thread, t, parent)."""
    mean = MEAN_REPLIES_PER_POST * np.sqrt(posts.quality) / np.sqrt(posts.quality).mean()
    dispersion = 1.5
    thread = np.repeat(np.arange(posts.n), rng.negative_binomial(dispersion, dispersion / (dispersion + mean)))
    t, ok = _delayed_times(rng, cal, posts.t[thread], ((0.85, 90.0, 1.3), (0.15, 1800.0, 0.8)), min_minutes=2.0)
    order = np.lexsort((t[ok], thread[ok]))
    thread, t = thread[ok][order], t[ok][order]
    while (tie := (thread[1:] == thread[:-1]) & (t[1:] <= t[:-1])).any():
        t[1:][tie] = t[:-1][tie] + 1  # keep times strictly increasing within a thread
    first = np.searchsorted(thread, thread, side="left")
    rank = np.arange(t.size) - first  # position within the thread, by time
    to_reply = (rank > 0) & (rng.random(t.size) < 0.35)
    parent = np.where(to_reply, first + (rng.random(t.size) * np.maximum(rank, 1)).astype(np.int64), -1)
    return thread, t, parent


def _draw_replies(rng: np.random.Generator, cal: _Calendar, users: _Users, posts: _Posts, scale: float) -> _Replies:
    """Reply tree, authors and styles: the thread's author thanking people, a few heated but civil
    replies, ~2% abusive ones (45% by a handful of repeat offenders, the rest one-off outbursts by
    anyone) and civil answers to the abuse."""
    thread, t, parent = _draw_reply_tree(rng, cal, posts)
    n = t.size
    author = _pick_users(rng, t, users.created_us, users.cum_post_w)
    style = np.full(n, _ADVICE_STYLE)
    u = rng.random(n)
    op = (parent >= 0) & (u < 0.12)
    style[op] = _OP_STYLE
    author[op] = posts.author[thread[op]]
    style[~op & (u > 0.97)] = _HEATED_STYLE
    abusive = ~op & (rng.random(n) < ABUSIVE_REPLY_SHARE)
    style[abusive] = _ABUSIVE_STYLE
    pre = np.flatnonzero(users.is_pre)
    quiet = pre[users.post_w[pre] <= np.median(users.post_w[pre])]
    n_trolls = min(max(3, round(5 * scale)), pre.size)
    trolls = rng.choice(quiet if quiet.size >= n_trolls else pre, size=n_trolls, replace=False)
    by_troll = abusive & (rng.random(n) < 0.45)
    author[by_troll] = trolls[rng.integers(0, trolls.size, by_troll.sum())]
    outburst = abusive & ~by_troll
    author[outburst] = _pick_users(rng, t[outburst], users.created_us, np.arange(1.0, users.n + 1.0))
    style[~op & ~abusive & np.isin(parent, np.flatnonzero(abusive))] = _CIVIL_STYLE
    return _Replies(thread, t, parent, author, style, np.exp(0.7 * rng.standard_normal(n)))


@dataclass(frozen=True)
class _Events:
    """Engagement events: type code (index into _EVENT_TYPES), content index, time, user index."""

    type: np.ndarray
    item: np.ndarray
    t: np.ndarray
    user: np.ndarray

    def take(self, mask: np.ndarray) -> _Events:
        return _Events(self.type[mask], self.item[mask], self.t[mask], self.user[mask])

    def concat(self, other: _Events) -> _Events:
        return _Events(
            np.concatenate([self.type, other.type]),
            np.concatenate([self.item, other.item]),
            np.concatenate([self.t, other.t]),
            np.concatenate([self.user, other.user]),
        )


_EVENT_TYPES = np.array(["upvote", "downvote", "favorite", "accept", "view"])
_UP, _DOWN, _FAV, _ACCEPT, _VIEW = range(5)


def _draw_votes_and_views(
    rng: np.random.Generator,
    cal: _Calendar,
    users: _Users,
    content: _Content,
) -> _Events:
    """Upvotes, downvotes, favorites and views decaying after each item's creation (most within a
    day or two, following the rhythm), by members who had joined, never on their own content, at
    most one vote and one favorite per member and item (the earliest wins)."""
    q, is_post, abusive = content.quality, content.is_post, content.is_abusive
    n_up = rng.poisson(np.where(is_post, 4.5, 1.4) * q * np.where(abusive, 0.05, 1.0))
    n_down = rng.poisson(np.where(abusive, 3.0, np.where(is_post, 0.15, 0.12)))
    n_fav = rng.poisson(np.where(is_post, 0.4 * q, 0.0))
    n_view = rng.poisson(np.where(is_post, 2.0 + 0.8 * content.replies_per_post + 0.3 * n_up, 0.0))
    counts = (n_up, n_down, n_fav, n_view)
    kind = np.repeat(np.array([_UP, _DOWN, _FAV, _VIEW]), [k.sum() for k in counts])
    item = np.concatenate([np.repeat(np.arange(q.size), k) for k in counts])
    t = np.zeros(item.size, dtype=np.int64)
    ok = np.zeros(item.size, dtype=bool)
    is_view = kind == _VIEW
    for mask, mix in ((~is_view, ((0.7, 240.0, 1.1), (0.3, 1800.0, 0.7))), (is_view, ((1.0, 120.0, 1.4),))):
        t[mask], ok[mask] = _delayed_times(rng, cal, content.t[item[mask]], mix)
    user = _pick_users(rng, t, users.created_us, users.cum_vote_w)
    ok &= user != content.author[item]
    events = _Events(kind, item, t, user).take(ok)
    # One vote (up or down) and one favorite per member and item; views may repeat.
    group = np.where(events.type == _DOWN, _UP, events.type)
    o = np.lexsort((events.t, events.user, events.item, group))
    same = (group[o][1:] == group[o][:-1]) & (events.item[o][1:] == events.item[o][:-1])
    same &= (events.user[o][1:] == events.user[o][:-1]) & (group[o][1:] != _VIEW)
    keep = np.ones(o.size, dtype=bool)
    keep[o[1:][same]] = False
    return events.take(keep)


def _draw_accepts(
    rng: np.random.Generator, cal: _Calendar, posts: _Posts, replies: _Replies, is_question: np.ndarray
) -> _Events:
    """On 55% of question threads the author accepts the best direct reply by someone else, hours
    after it was written (if that is still within the period). Items index replies from ``posts.n``."""
    helpful = (replies.parent < 0) & (replies.style == _ADVICE_STYLE)
    cand = np.flatnonzero(helpful & (replies.author != posts.author[replies.thread]) & is_question[replies.thread])
    cand = cand[np.lexsort((-replies.quality[cand], replies.thread[cand]))]
    best = cand[np.unique(replies.thread[cand], return_index=True)[1]]
    best = best[rng.random(best.size) < 0.55]
    t = replies.t[best] + _minutes_us(5.0 + _lognormal_minutes(rng, best.size, ((1.0, 360.0, 1.0),)))
    fits = t < cal.t1_us
    best, t = best[fits], t[fits]
    return _Events(np.full(best.size, _ACCEPT), posts.n + best, t, posts.author[replies.thread[best]])


@dataclass(frozen=True)
class _Content:
    """All content in generation order (posts, then replies) with what engagement needs."""

    t: np.ndarray
    author: np.ndarray
    is_post: np.ndarray
    is_abusive: np.ndarray
    quality: np.ndarray
    replies_per_post: np.ndarray  # 0 for replies


def _combine(posts: _Posts, replies: _Replies) -> _Content:
    """Posts and replies as one :class:`_Content` (posts first, each in its own order)."""
    n_posts = posts.n
    return _Content(
        t=np.concatenate([posts.t, replies.t]),
        author=np.concatenate([posts.author, replies.author]),
        is_post=np.arange(n_posts + replies.n) < n_posts,
        is_abusive=np.concatenate([np.zeros(n_posts, bool), replies.style == _ABUSIVE_STYLE]),
        quality=np.concatenate([posts.quality, replies.quality]),
        replies_per_post=np.concatenate([np.bincount(replies.thread, minlength=n_posts), np.zeros(replies.n, int)]),
    )


def _draw_edits(rng: np.random.Generator, cal: _Calendar, content: _Content, style: np.ndarray) -> np.ndarray:
    """Edit times (UTC µs, or -1 for unedited): 6% of posts and 3% of advice replies, minutes to
    hours after creation, within the period."""
    advice = np.concatenate([np.zeros(content.is_post.sum(), bool), style == _ADVICE_STYLE])
    edited = rng.random(content.t.size) < np.where(content.is_post, 0.06, np.where(advice, 0.03, 0.0))
    t = content.t + _minutes_us(1.0 + _lognormal_minutes(rng, content.t.size, ((1.0, 30.0, 1.2),)))
    return np.where(edited & (t < cal.t1_us), t, -1)


def _texts(
    rng: np.random.Generator, posts: _Posts, replies: _Replies, edit_t: np.ndarray
) -> tuple[list[str | None], list[str], np.ndarray]:
    """Titles (None for replies), bodies with edit notes, and the posts' is-question flags."""
    primary = [tags[0] for tags in posts.tags]
    titles, post_bodies, is_question = _post_texts(rng, primary)
    reply_bodies = _reply_texts(rng, [primary[p] for p in replies.thread.tolist()], replies.style)
    bodies = post_bodies + reply_bodies
    note = rng.integers(0, 1 << 30, len(bodies))
    for i in np.flatnonzero(edit_t >= 0).tolist():
        notes = _EDIT_NOTES_POST if i < posts.n else _EDIT_NOTES_REPLY
        bodies[i] = f"{bodies[i]}\n\nEdit: {notes[note[i] % len(notes)]}"
    return [*titles, *([None] * replies.n)], bodies, is_question


def _to_datetime(us: np.ndarray, valid: np.ndarray | None = None) -> pl.Series:
    """UTC µs since the epoch as naive ``Datetime("us")``; null where ``valid`` is false."""
    s = pl.Series(us.astype(np.int64)).cast(pl.Datetime("us"))
    return s if valid is None else s.set(pl.Series(~valid), None)


def _ids(index: np.ndarray) -> np.ndarray:
    """0-based indices as the source's 1-based string ids."""
    return (index + 1).astype(str)


@functools.lru_cache(maxsize=2)
def _history(
    seed: int, start: date, days: int, timezone: str, scale: float
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The unbounded demo history as canonical (users, content, engagement_events) frames.

    Content ids are ``1..N`` in creation order, user ids ``1..U`` in joining order and event ids
    ``1..M`` in time order. Cached (two argument sets) so that windows of one history are cheap.
    """
    tz = _validate(start, days, timezone, scale)
    rng = np.random.default_rng(seed)
    cal = _build_calendar(rng, start, days, tz, POSTS_PER_DAY * scale)
    users = _draw_users(rng, cal, scale)
    posts = _draw_posts(rng, cal, start, days, users)
    replies = _draw_replies(rng, cal, users, posts, scale)
    content = _combine(posts, replies)
    edit_t = _draw_edits(rng, cal, content, replies.style)
    titles, bodies, is_question = _texts(rng, posts, replies, edit_t)
    events = _draw_votes_and_views(rng, cal, users, content)
    events = events.concat(_draw_accepts(rng, cal, posts, replies, is_question))

    # Ids in creation order; counters and reputation over the whole history.
    n = content.t.size
    order = np.lexsort((np.arange(n), content.t))
    cid = np.empty(n, dtype=np.int64)
    cid[order] = np.arange(n)
    post_cid, reply_cid = cid[: posts.n], cid[posts.n :]
    parent = np.where(replies.parent >= 0, reply_cid[np.maximum(replies.parent, 0)], post_cid[replies.thread])
    per_type = [np.bincount(events.item[events.type == k], minlength=n) for k in range(len(_EVENT_TYPES))]
    points = 10 * per_type[_UP] + 5 * per_type[_FAV] + 15 * per_type[_ACCEPT] - 2 * per_type[_DOWN]
    reputation = np.maximum(1 + np.bincount(content.author, weights=points, minlength=users.n), 1)
    kinds = np.where(content.is_post, "post", "reply")

    users_df = pl.DataFrame(
        {
            "source": SOURCE,
            "user_id": _ids(np.arange(users.n)),
            "display_name": _display_names(rng, users.n),
            "created_at": _to_datetime(users.created_us),
            "reputation": reputation.astype(np.int64),
        }
    )
    content_df = pl.DataFrame(
        {
            "source": SOURCE,
            "content_id": _ids(cid),
            "kind": kinds,
            "thread_id": _ids(np.concatenate([post_cid, post_cid[replies.thread]])),
            "parent_id": pl.Series([None] * posts.n + _ids(parent).tolist(), dtype=pl.String),
            "author_id": _ids(content.author),
            "created_at": _to_datetime(content.t),
            "edited_at": _to_datetime(edit_t, edit_t >= 0),
            "title": pl.Series(titles, dtype=pl.String),
            "body_text": bodies,
            "tags": pl.Series([*posts.tags, *([None] * replies.n)], dtype=pl.List(pl.String)),
            "score": per_type[_UP] - per_type[_DOWN],
            "view_count": pl.Series(per_type[_VIEW]).set(pl.Series(~content.is_post), None),
            "content_hash": [content_hash(k, t, b) for k, t, b in zip(kinds.tolist(), titles, bodies, strict=False)],
        }
    ).sort(pl.col("content_id").cast(pl.Int64))
    o = np.lexsort((events.user, events.item, events.type, events.t))
    events_df = pl.DataFrame(
        {
            "source": SOURCE,
            "event_id": _ids(np.arange(o.size)),
            "event_type": _EVENT_TYPES[events.type[o]],
            "content_id": _ids(cid[events.item[o]]),
            "user_id": _ids(events.user[o]),
            "occurred_at": _to_datetime(events.t[o]),
            "time_precision": "exact",
        }
    )
    return conform(users_df, "users"), conform(content_df, "content"), conform(events_df, "engagement_events")


# --- public API ---------------------------------------------------------------------------------


def _naive_utc(ts: datetime | None) -> datetime | None:
    """``ts`` as naive UTC: aware datetimes are converted, naive ones are taken as UTC already."""
    if ts is None or ts.tzinfo is None:
        return ts
    return ts.astimezone(UTC).replace(tzinfo=None)


def _cut(df: pl.DataFrame, column: str, since: datetime | None, until: datetime | None) -> pl.DataFrame:
    """Rows of ``df`` whose ``column`` lies in ``[since, until)`` (None bounds are open)."""
    cond = pl.lit(True)
    if since is not None:
        cond &= pl.col(column) >= since
    if until is not None:
        cond &= pl.col(column) < until
    return df.filter(cond)


def generate_demo(
    *,
    seed: int = 7,
    start: date = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    timezone: str = DEFAULT_TIMEZONE,
    scale: float = 1.0,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Extract:
    """Generate the synthetic demo community, cut to the data interval ``[since, until)``.

    Args:
        seed: seed for ``numpy.random.default_rng``; the same arguments give identical frames.
        start: first local day of the period; the period is ``[start, start + days)`` in
            ``timezone`` (local midnights), stored as naive UTC.
        days: length of the period in local days (>= 1).
        timezone: the community's IANA timezone; rhythms follow its local clock, DST included.
        scale: volume multiplier: ~800 x scale users, ~12 x scale posts a day (linear cost).
        since, until: the data interval in UTC (naive, or aware and then converted); ``None`` is
            open. Users are cut by ``created_at``, content by ``created_at`` and engagement events
            by ``occurred_at``. Consecutive windows partition the unbounded extract exactly.

    Returns:
        An :class:`Extract` with ``source="demo"``, ``synthetic=True``, ``timezone=timezone`` and
        canonical frames. At the defaults: ~800 users (some joined up to two years before
        ``start``), ~11k content rows, ~47k engagement events (~0.2 s; scale 10 takes ~2 s). Nothing is quarantined or skipped,
        so each stream's ``read == emitted`` = rows in the window (records outside the window are
        not read for it). ``content.score``/``view_count`` and ``users.reputation`` are totals
        over the whole generated history, identical in every window.

    Raises:
        ValueError: ``days < 1``, ``scale <= 0`` or ``since > until``.
        TypeError: ``start`` is not a ``date``.
        zoneinfo.ZoneInfoNotFoundError: unknown ``timezone``.
    """
    since_n, until_n = _naive_utc(since), _naive_utc(until)
    if since_n is not None and until_n is not None and since_n > until_n:
        raise ValueError(f"since {since_n} is after until {until_n}")
    frames = _history(int(seed), start, days, timezone, float(scale))
    cut = {
        "users": _cut(frames[0], "created_at", since_n, until_n),
        "content": _cut(frames[1], "created_at", since_n, until_n),
        "engagement_events": _cut(frames[2], "occurred_at", since_n, until_n),
    }
    counts = {s: StreamCounts(read=cut[s].height, emitted=cut[s].height) for s in STREAMS}
    return Extract(
        source=SOURCE,
        users=cut["users"].clone(),
        content=cut["content"].clone(),
        engagement_events=cut["engagement_events"].clone(),
        quarantine=QuarantineLog(SOURCE).frame(),
        counts=counts,
        synthetic=True,
        timezone=timezone,
        since=since_n,
        until=until_n,
    )


def abusive_ids(extract: Extract | pl.DataFrame) -> set[str]:
    """Content ids of the abusive replies the demo wrote (the ground truth for moderation demos).

    Args:
        extract: a demo :class:`Extract` or its ``content`` frame (any window).

    Returns:
        The ``content_id`` of every reply whose body starts with one of :data:`ABUSIVE_OPENERS`;
        no clean template starts with one, so this is exact for demo data.
    """
    content = extract.content if isinstance(extract, Extract) else extract
    starts = pl.any_horizontal([pl.col("body_text").str.starts_with(o) for o in ABUSIVE_OPENERS])
    return set(content.filter((pl.col("kind") == "reply") & starts)["content_id"].to_list())
