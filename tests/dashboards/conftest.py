"""Fixtures for the dashboard tests: serving snapshots to point the app at.

Two kinds:

- ``pipeline_snapshot``: the demo source run through the real pipeline
  (``pulse.steps.run_pipeline``, lexical scorer) and published, as the app sees it in use.
- Hand-made snapshots (``snapshot``, ``fallback_snapshot``, ``empty_snapshot``,
  ``bare_snapshot``) for what a pipeline run does not produce on demand: two sources (one
  real, one synthetic), a hostile post and payload, a failed run with a critical expectation,
  fallback scores, empty and absent tables. They use the warehouse migrations for the ops,
  quality, moderation and raw tables and hand-written DDL mirroring ``transforms/marts/*.sql``
  for the marts. PROVISIONAL in that sense: if the marts' columns change, update ``MARTS_DDL``
  (the pipeline-built tests will catch a page that no longer matches the real marts).

The constants below (busiest cell, queue size, run status ...) are what the tests expect to
see on the pages; each is also recomputed from the snapshot file in the tests themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from warehouse.db import migrate

# --- expectations shared with test_pages.py ---------------------------------------------

HOSTILE_TITLE = "[click me](http://evil/phish) **bold** <b>title</b>"
HOSTILE_BODY = "<script>alert(1)</script> ![x](http://evil/img.png) see [here](http://evil/)"
HOSTILE_PAYLOAD = '{"Id": "9", "Body": "<img src=x onerror=alert(1)>", "CreationDate": "yesterday"}'
FALLBACK_NOTE = "detoxify weights unavailable offline"
DEMO_QUEUE_SIZE = 4
DEMO_TOPICS_LATEST = ["hops", "sour", "lager"]  # ranked, in rank order; "obscure" is below support
DEMO_EMERGING = ["sour"]  # the latest week's emerging topics
DEMO_HOT = ["hops", "sour", "lager"]  # the latest week's hot topics, by volume
HOT_HOSTILE_TITLE = "<img src=x onerror=alert(1)> [win](http://evil/) **now**"
BEER_DAY_PRECISION_UPVOTES = 120

CONTENT_TYPES = ("question", "answer", "comment")
WEEKDAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

MARTS_DDL = """
create schema if not exists marts;
create table marts.activity_heatmap (
    source varchar, activity_type varchar, weekday integer, weekday_name varchar, hour integer,
    timezone varchar, events bigint, weeks_observed double, mean_per_week double
);
create table marts.engagement_daily (
    source varchar, day date, active_users bigint, new_users bigint, new_content bigint,
    questions bigint, answers bigint, comments bigint, posts bigint, replies bigint,
    upvotes bigint, downvotes bigint, favorites bigint, accepts bigint, votes bigint, events bigint,
    dau bigint, wau bigint, mau bigint, stickiness double, new_threads bigint, threads_responded bigint,
    response_rate double, response_window_complete boolean
);
create table marts.trending_topics (
    source varchar, period varchar, period_start date, period_end date, week_start date, topic varchar,
    topic_origin varchar, volume bigint, baseline_periods integer, baseline_mean double, baseline_std double,
    z_score double, growth double, volume_rank bigint, is_partial boolean, is_hot boolean, is_rising boolean,
    is_emerging boolean, rank bigint, example_content_ids varchar[], example_titles varchar[]
);
create table marts.activity_timeline (
    source varchar, activity_type varchar, bucket_start timestamp, events bigint
);
create table marts.response_times (
    source varchar, content_id varchar, kind varchar, author_id varchar, created_at timestamp,
    created_local timestamp, timezone varchar, weekday integer, hour integer, first_answer_at timestamp,
    first_comment_at timestamp, first_response_at timestamp, hours_to_first_answer double,
    hours_to_first_comment double, hours_to_first_response double, answers bigint, comments bigint,
    is_answered boolean, answers_within bigint, comments_within bigint, votes_within bigint,
    engagement_within bigint, responded_within boolean, window_complete boolean, as_of timestamp
);
create table marts.best_time_to_post (
    source varchar, weekday integer, weekday_name varchar, hour integer, timezone varchar, posts bigint,
    mean_engagement double, engagement_sd double, engagement_ci_low double, engagement_ci_high double,
    mean_answers double, mean_comments double, mean_votes double, responded bigint, response_share double,
    response_share_wilson_low double, median_hours_to_first_response double, is_sufficient boolean, rank bigint
);
create table marts.hot_content (
    source varchar, content_id varchar, kind varchar, title varchar, tags varchar[], author_id varchar,
    created_at timestamp, as_of timestamp, age_hours double, score bigint, replies bigint, points bigint,
    hot_score double, rank bigint
);
create table marts.moderation_queue (
    source varchar, content_id varchar, kind varchar, thread_id varchar, parent_id varchar,
    author_id varchar, author_name varchar, created_at timestamp, title varchar, body_text varchar,
    tags varchar[], model_id varchar, content_hash varchar, is_fallback boolean,
    flagged_labels varchar[], max_label varchar, max_score double, severity double, hold boolean,
    toxicity double, severe_toxicity double, obscene double, threat double, insult double,
    identity_attack double, sexual_explicit double, author_prior_flags bigint, priority bigint
);
"""


@dataclass(frozen=True)
class Snapshot:
    """A serving snapshot file and what the tests should find on the pages."""

    path: Path
    sources: tuple[str, ...]


def _mondays(n: int, last: date = date(2026, 11, 9)) -> list[date]:
    """``n`` consecutive Mondays ending at ``last`` (oldest first)."""
    return [last - timedelta(weeks=n - 1 - i) for i in range(n)]


def _heatmap_rows(source: str, tz: str, types: tuple[str, ...]) -> list[tuple]:
    """A full 7 x 24 grid per type; a deterministic background plus a few planted peaks."""
    peaks = {  # (type, weekday, hour): extra events over 4 weeks
        ("question", 2, 20): 9,  # Tuesday 20:00
        ("answer", 2, 20): 8,
        ("comment", 3, 19): 12,  # Wednesday 19:00 (less than Tue 20 summed over content)
        ("answer", 5, 9): 6,
    }
    rows = []
    for offset, kind in enumerate(types):
        for weekday in range(1, 8):
            for hour in range(24):
                events = (weekday * 5 + hour * 3 + offset) % 4 + peaks.get((kind, weekday, hour), 0)
                rows.append((source, kind, weekday, WEEKDAY_NAMES[weekday - 1], hour, tz, events, 4.0, events / 4.0))
    return rows


def _daily_rows(source: str, upvotes: int) -> list[tuple]:
    """Seven days of engagement_daily; all ``upvotes`` fall on the first day. DAU 10 (the last
    day 16), MAU 40, 5 new threads a day of which 4 answered in time (the last two days'
    windows are still open)."""
    start = date(2026, 11, 9)
    return [
        (
            source,
            start + timedelta(days=i),
            dau,
            1,
            20,
            5,
            8,
            7,
            0,
            0,
            n,
            0,
            0,
            0,
            n,
            30 + n,
            dau,
            20,
            40,
            dau / 40,
            5,
            4,
            0.8,
            i < 5,
        )
        for i, (n, dau) in enumerate(zip([upvotes, 0, 0, 0, 0, 0, 0], [10, 10, 10, 10, 10, 10, 16], strict=True))
    ]


def _queue_rows() -> list[tuple]:
    """Four flagged demo items, priority 1..4 (severity descending, as the mart orders them); the
    first one is hostile."""
    base = datetime(2026, 11, 14, 12, 0)

    def item(i: int, title, body, labels, max_label, max_score, hold, scores, fallback=False, author="u1"):
        return (
            "demo",
            f"demo:c{i}",
            "question" if title else "comment",
            f"demo:t{i}",
            None,
            f"demo:{author}",
            f"Author {author}",
            base - timedelta(hours=i),
            title,
            body,
            ["hops"] if title else [],
            "lexical:alt-profanity-check" if fallback else "detoxify:original",
            f"hash{i}",
            fallback,
            labels,
            max_label,
            max_score,
            max_score,
            hold,
            *scores,
            1 if author == "u1" else 0,
            i,
        )

    return [
        item(
            1,
            HOSTILE_TITLE,
            HOSTILE_BODY,
            ["toxicity", "insult"],
            "toxicity",
            0.97,
            True,
            (0.97, 0.2, 0.5, 0.05, 0.9, 0.1, 0.01),
        ),
        item(
            2,
            None,
            "you are an idiot",
            ["insult"],
            "insult",
            0.88,
            False,
            (0.7, 0.05, 0.2, 0.01, 0.88, 0.02, 0.0),
            author="u2",
        ),
        item(
            3,
            "I will find you",
            "threatening words",
            ["threat"],
            "threat",
            0.85,
            False,
            (0.5, 0.1, 0.05, 0.85, 0.2, 0.02, 0.0),
            author="u1",
        ),
        item(
            4,
            None,
            "darn this",
            ["toxicity"],
            "toxicity",
            0.82,
            False,
            (0.82, None, None, None, None, None, None),
            fallback=True,
            author="u3",
        ),
    ]


def _fill(con: duckdb.DuckDBPyConnection, *, fallback_scores: bool) -> None:
    """Insert the hand-made rows for the sources ``demo`` (synthetic) and ``beer`` (real)."""
    con.executemany(
        "insert into ops.sources values (?, ?, ?, ?)",
        [("beer", False, "UTC", "beer.stackexchange.com dump"), ("demo", True, "Europe/Berlin", "generated")],
    )
    con.executemany(
        "insert into marts.activity_heatmap values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _heatmap_rows("demo", "Europe/Berlin", (*CONTENT_TYPES, "upvote"))
        + _heatmap_rows("beer", "UTC", ("question",)),
    )
    # demo: every upvote is hour-precise (the daily total equals the heatmap's);
    # beer: its upvotes are day-precision only (none in the heatmap), so the page notes them.
    demo_upvotes = con.execute(
        "select sum(events) from marts.activity_heatmap where source = 'demo' and activity_type = 'upvote'"
    ).fetchone()[0]
    con.executemany(
        f"insert into marts.engagement_daily values ({', '.join('?' * 24)})",
        _daily_rows("demo", int(demo_upvotes)) + _daily_rows("beer", BEER_DAY_PRECISION_UPVOTES),
    )
    older, previous, latest = _mondays(3)

    def topic(week, name, volume, mean, z, rank, hot, rising, emerging, ids, titles, volume_rank):
        return (
            "demo",
            "week",
            week,
            week + timedelta(days=6),
            week,
            name,
            "tag",
            volume,
            4,
            mean,
            0.5,
            z,
            (volume + 1) / (mean + 1),
            volume_rank,
            week == latest,
            hot,
            rising,
            emerging,
            rank,
            ids,
            titles,
        )

    con.executemany(
        f"insert into marts.trending_topics values ({', '.join('?' * 21)})",
        [
            topic(older, "hops", 2, 1.0, 0.7, None, False, False, False, ["demo:t1"], ["Hop schedule"], 1),
            topic(previous, "hops", 3, 3.5, -0.2, 1, True, False, False, ["demo:t1"], ["Hop schedule"], 1),
            topic(
                latest,
                "hops",
                12,
                3.5,
                3.2,
                1,
                True,
                True,
                False,
                ["demo:t1", "demo:t5"],
                ["Hop schedule", "Dry hopping"],
                1,
            ),
            topic(latest, "sour", 4, 0.5, 2.1, 2, True, True, True, ["demo:t7"], [HOSTILE_TITLE], 2),
            topic(latest, "lager", 3, 3.0, -0.2, 3, True, False, False, ["demo:t8"], ["Lager yeast"], 3),
            topic(latest, "obscure", 1, 0.0, 1.0, None, False, False, False, ["demo:t9"], ["Gruit"], 4),
        ],
    )
    con.executemany(
        f"insert into marts.hot_content values ({', '.join('?' * 14)})",
        [
            (
                "demo",
                "demo:t5",
                "post",
                HOT_HOSTILE_TITLE,
                ["hops"],
                "demo:u1",
                datetime(2026, 11, 15, 1),
                datetime(2026, 11, 15, 3),
                2.0,
                5,
                3,
                8,
                8 / 4**1.8,
                1,
            ),
            (
                "demo",
                "demo:t1",
                "post",
                "Hop schedule",
                ["hops"],
                "demo:u2",
                datetime(2026, 11, 13, 3),
                datetime(2026, 11, 15, 3),
                48.0,
                9,
                4,
                13,
                13 / 50**1.8,
                2,
            ),
        ],
    )
    queue = _queue_rows()
    con.executemany(f"insert into marts.moderation_queue values ({', '.join('?' * len(queue[0]))})", queue)
    scored_at = datetime(2026, 11, 15, 3, 0)
    con.executemany(
        "insert into moderation.scores values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                row[12],
                row[11],
                "1",
                "lexical" if row[13] else "detoxify",
                fallback_scores and row[13],
                *row[19:26],
                scored_at,
            )
            for row in queue
        ],
    )
    _fill_ops(con)


def _fill_ops(con: duckdb.DuckDBPyConnection) -> None:
    """Runs, stream counts, step log, quarantine and expectation results."""
    t0 = datetime(2026, 11, 15, 3, 0)
    con.executemany(
        "insert into ops.runs values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                "run-demo-1",
                "demo",
                t0 - timedelta(days=2),
                t0 - timedelta(days=1),
                t0 - timedelta(days=1),
                t0 - timedelta(days=1) + timedelta(seconds=4),
                "failed",
                "QualityGateError: <b>3</b> critical expectations failed",
                "cli",
                "detoxify:original",
                False,
                None,
            ),
            (
                "run-demo-2",
                "demo",
                t0 - timedelta(days=1),
                t0,
                t0,
                t0 + timedelta(seconds=12.5),
                "success",
                None,
                "airflow",
                "lexical:alt-profanity-check",
                True,
                FALLBACK_NOTE,
            ),
            (
                "run-beer-1",
                "beer",
                None,
                None,
                t0,
                t0 + timedelta(seconds=30),
                "success",
                None,
                "cli",
                "detoxify:original",
                False,
                None,
            ),
        ],
    )
    con.executemany(
        "insert into ops.stream_counts values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ("run-demo-2", "demo", "content", 120, 3, 4, 100, 5, 8, json.dumps({"deleted": 3})),
            ("run-demo-2", "demo", "users", 40, 0, 0, 38, 2, 0, "{}"),
            ("run-demo-2", "demo", "engagement_events", 500, 10, 0, 480, 0, 10, json.dumps({"orphan": 10})),
        ],
    )
    con.executemany(
        "insert into ops.step_log values (?, ?, ?, ?, ?, ?)",
        [
            ("run-demo-2", step, t0 + timedelta(seconds=i), elapsed, rows, None)
            for i, (step, elapsed, rows) in enumerate(
                [
                    ("extract", 1.2, 660),
                    ("validate", 0.8, 660),
                    ("load", 2.0, 626),
                    ("score", 5.5, 100),
                    ("transform", 2.1, 900),
                    ("validate_marts", 0.6, 900),
                    ("publish", 0.3, 12),
                ]
            )
        ],
    )
    con.executemany(
        "insert into raw.quarantine values (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                "demo",
                "content",
                f"{i}",
                "bad_timestamp",
                "CreationDate is not a timestamp",
                HOSTILE_PAYLOAD.replace('"9"', f'"{i}"'),
                f"fp{i}",
                "run-demo-2",
            )
            for i in range(3)
        ]
        + [("demo", "users", None, "missing_id", "no Id attribute", '{"DisplayName": "x"}', "fpu", "run-demo-1")],
    )
    now = t0 + timedelta(seconds=3)
    results = [
        (
            "run-demo-2",
            "staging",
            "expect_column_values_to_not_be_null",
            "content_id",
            "staging.content",
            True,
            True,
            0,
            100,
        ),
        (
            "run-demo-2",
            "staging",
            "expect_column_values_to_be_unique",
            "content_id",
            "staging.content",
            True,
            True,
            0,
            100,
        ),
        (
            "run-demo-2",
            "marts",
            "expect_column_values_to_be_between",
            "hour",
            "marts.activity_heatmap",
            True,
            True,
            0,
            672,
        ),
        (
            "run-demo-2",
            "marts",
            "expect_column_values_to_not_be_null",
            "title",
            "marts.moderation_queue",
            False,
            False,
            2,
            4,
        ),
        (
            "run-demo-1",
            "staging",
            "expect_column_values_to_not_be_null",
            "content_id",
            "staging.content",
            False,
            True,
            3,
            100,
        ),
    ]
    con.executemany(
        "insert into quality.validation_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*r, None, now) for r in results],
    )


def build_snapshot(
    path: Path, *, rows: bool = True, fallback_scores: bool = False, bare: bool = False, decisions: bool = False
) -> Path:
    """Write a snapshot to ``path``.

    Args:
        decisions: add a ``moderation.decisions`` table (moderators' actions, as the review
            queue will publish them): three decisions at 09:xx UTC and one at 20:xx UTC.
        rows: fill the tables with the hand-made rows (else: every table exists but is empty,
            apart from one non-synthetic source ``empty``).
        fallback_scores: mark the lexical score as ``is_fallback`` in ``moderation.scores``.
        bare: only ``ops.sources`` exists (every other table is absent).
    """
    con = duckdb.connect(str(path))
    try:
        if bare:
            con.execute("create schema ops")
            con.execute(
                "create table ops.sources (source varchar primary key, synthetic boolean not null, "
                "timezone varchar, description varchar)"
            )
            con.execute("insert into ops.sources values ('bare', false, 'UTC', null)")
            return path
        migrate(con)
        con.execute(MARTS_DDL)
        if rows:
            _fill(con, fallback_scores=fallback_scores)
        else:
            con.execute("insert into ops.sources values ('empty', false, 'UTC', null)")
        if decisions:
            con.executemany(
                "insert into moderation.decisions (decision_id, source, content_id, item_version, from_state, "
                "to_state, action, actor, decided_at, ingested_run_id) values (?, ?, ?, 1, 'pending', ?, ?, 'mod', ?, 'r')",
                [
                    (f"d{i}", "demo", f"demo:c{i}", "removed", "remove", datetime(2026, 11, 14, 9, 10 * i))
                    for i in range(1, 4)
                ]
                + [("d4", "demo", "demo:c4", "approved", "approve", datetime(2026, 11, 14, 20, 5))],
            )
        _split_restricted(con, path)
    finally:
        con.close()
    return path


def _split_restricted(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Do what ``warehouse.publish`` does: raw quarantine rows and decision notes go to the restricted
    snapshot beside ``path``; the snapshot keeps ``raw.quarantine_counts`` and decisions without notes."""
    from warehouse.publish import REDACTED_TABLES, RESTRICTED_NAME, RESTRICTED_TABLES

    restricted = path.with_name(RESTRICTED_NAME)
    restricted.unlink(missing_ok=True)
    con.execute(f"attach '{restricted}' as restricted")
    for name in RESTRICTED_TABLES:
        schema = name.split(".")[0]
        con.execute(f"create schema if not exists restricted.{schema}")
        con.execute(f"create table restricted.{name} as select * from {name}")
    con.execute("detach restricted")
    for name, (_, select) in REDACTED_TABLES.items():
        con.execute(f"create or replace table {name}_redacted as select {select}")
    for name in {*RESTRICTED_TABLES, *REDACTED_TABLES}:  # a redacted table may read a table of its own name
        con.execute(f"drop table if exists {name}")
    for name in REDACTED_TABLES:
        con.execute(f"alter table {name}_redacted rename to {name.split('.')[1]}")


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """PROVISIONAL: the hand-made two-source snapshot (``beer`` real, ``demo`` synthetic)."""
    path = build_snapshot(tmp_path_factory.mktemp("serving") / "serving.duckdb")
    return Snapshot(path, ("beer", "demo"))


@pytest.fixture(scope="session")
def pipeline_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """The demo source through the real pipeline with the lexical scorer (about 7 s)."""
    from pulse.settings import load_settings
    from pulse.steps import SourceSpec, run_pipeline

    folder = tmp_path_factory.mktemp("pipeline")
    settings = load_settings(warehouse=folder / "warehouse.duckdb", serving=folder / "serving.duckdb", scorer="lexical")
    run_pipeline(settings, SourceSpec("demo"))
    return Snapshot(Path(settings.serving), ("demo",))


@pytest.fixture(scope="session")
def fallback_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """Like ``snapshot``, but one stored score is a fallback-model score."""
    path = build_snapshot(tmp_path_factory.mktemp("serving_fb") / "serving.duckdb", fallback_scores=True)
    return Snapshot(path, ("beer", "demo"))


@pytest.fixture(scope="session")
def empty_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """Every table present, none with rows (one source, ``empty``)."""
    return Snapshot(build_snapshot(tmp_path_factory.mktemp("serving_empty") / "serving.duckdb", rows=False), ("empty",))


@pytest.fixture(scope="session")
def bare_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """Only ``ops.sources``: every table the pages read is absent."""
    return Snapshot(build_snapshot(tmp_path_factory.mktemp("serving_bare") / "serving.duckdb", bare=True), ("bare",))


@dataclass(frozen=True)
class Facts:
    """What the hand-made snapshot holds, for assertions (tests cannot import conftest)."""

    hostile_title: str = HOSTILE_TITLE
    hostile_body: str = HOSTILE_BODY
    hostile_payload: str = HOSTILE_PAYLOAD
    fallback_note: str = FALLBACK_NOTE
    demo_queue_size: int = DEMO_QUEUE_SIZE
    demo_topics_latest: tuple[str, ...] = tuple(DEMO_TOPICS_LATEST)
    demo_emerging: tuple[str, ...] = tuple(DEMO_EMERGING)
    demo_hot: tuple[str, ...] = tuple(DEMO_HOT)
    hot_hostile_title: str = HOT_HOSTILE_TITLE
    beer_day_precision_upvotes: int = BEER_DAY_PRECISION_UPVOTES


@pytest.fixture(scope="session")
def facts() -> Facts:
    """The constants the hand-made snapshots were built with."""
    return Facts()


@pytest.fixture(scope="session")
def make_snapshot():
    """The snapshot builder, :func:`build_snapshot` (for tests that need a fresh file)."""
    return build_snapshot


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Point the app at a snapshot: ``serve(snapshot)`` sets ``PULSE_SERVING``."""

    def _serve(snap: Snapshot | Path) -> None:
        monkeypatch.setenv("PULSE_SERVING", str(snap.path if isinstance(snap, Snapshot) else snap))

    yield _serve


# --- review app: accounts and sign-in -------------------------------------------------------

REVIEW_ACCOUNTS: dict[str, tuple[str, str]] = {  # username -> (role, password); test-only accounts
    "admin": ("admin", "admin-password-0001"),
    "mod": ("moderator", "moderator-pass-0001"),
    "mod2": ("moderator", "moderator-pass-0002"),
    "boss": ("manager", "manager-password-01"),
}


def make_review_store(url: str):
    """A review store at ``url`` with the accounts of :data:`REVIEW_ACCOUNTS` (bcrypt cost 4: fast)."""
    from moderation.review_store import ReviewStore

    store = ReviewStore(url, bcrypt_rounds=4)
    store.create_schema()
    for username, (role, password) in REVIEW_ACCOUNTS.items():
        store.add_user(
            username, name=f"{username.title()} Person", email=f"{username}@example.org", role=role, password=password
        )
    return store


@pytest.fixture(scope="session")
def review_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A session-wide review store with the test accounts and no decisions (for read-only pages)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('review') / 'review.sqlite'}"
    make_review_store(url).dispose()
    return url


@pytest.fixture(autouse=True)
def _review_env(monkeypatch: pytest.MonkeyPatch, review_store_url: str) -> None:
    """Every dashboard test talks to the test review store and explains with the lexical scorer."""
    monkeypatch.setenv("PULSE_REVIEW_STORE_URL", review_store_url)
    monkeypatch.setenv("PULSE_SCORER", "lexical")


@pytest.fixture
def fresh_review_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A new review store for this test only (decisions start empty); the app is pointed at it."""
    url = f"sqlite:///{tmp_path / 'review.sqlite'}"
    store = make_review_store(url)
    monkeypatch.setenv("PULSE_REVIEW_STORE_URL", url)
    yield store
    store.dispose()


@pytest.fixture(scope="session")
def review_accounts() -> dict[str, tuple[str, str]]:
    """The test accounts: username -> (role, password)."""
    return dict(REVIEW_ACCOUNTS)


@pytest.fixture(scope="session")
def signed_in():
    """``signed_in(app_test, username)``: mark the AppTest session as signed in (as
    streamlit-authenticator does after a correct password) before its first run."""

    def _signed_in(at, username: str = "admin"):
        at.session_state["authentication_status"] = True
        at.session_state["username"] = username
        return at

    return _signed_in
