"""The PostgreSQL source against a real PostgreSQL server holding a Discourse-shaped database.

The database is filled from the real beer.stackexchange dump, the vendored slice (tests/warehouse/discourse_fixture.py):
an initial load, then a second interval with 2 new posts, 1 edit, 1 deletion and 1 new like,
then a re-run of that interval; plus keyset paging across equal timestamps, a connection killed
mid-read, the statement timeout and bad mapping files.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pulse.settings import load_settings
from pulse.steps import SourceSpec, postgres_options, run_pipeline
from warehouse.db import connect, frame, one
from warehouse.sources.postgres import (
    MappingError,
    PostgresSourceError,
    extract_postgres,
    load_mapping,
    redact_dsn,
)


def _fixture_module():
    """tests/warehouse/discourse_fixture.py, loaded by path (tests/ is not a package)."""
    name = "pulse_tests_discourse_fixture"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("discourse_fixture.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_fx = _fixture_module()
COMMENT_ID_OFFSET, PM_TOPIC_ID, WHISPER_POST_ID = _fx.COMMENT_ID_OFFSET, _fx.PM_TOPIC_ID, _fx.WHISPER_POST_ID
discourse_data, load_discourse = _fx.discourse_data, _fx.load_discourse

T1 = datetime(2020, 1, 1)  # end of the first interval (the dump ends in 2016)
T_CHANGE = datetime(2021, 3, 1, 12, 0)  # when the second interval's changes happen on the platform
T2 = datetime(2021, 3, 2)  # end of the second interval
NOW = datetime(2026, 1, 1)


def _create_db(postgres_url: str) -> str:
    import psycopg

    name = f"pulse_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    return f"{postgres_url.rpartition('/')[0]}/{name}"


def _drop_db(postgres_url: str, url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{url.rpartition("/")[2]}" with (force)')


@pytest.fixture(scope="module")
def discourse_db(postgres_url: str, beer_dump: Path) -> Iterator[str]:
    """A Discourse-shaped database filled from the beer dump (module-scoped: built once)."""
    url = _create_db(postgres_url)
    try:
        load_discourse(url, discourse_data(beer_dump))
        yield url
    finally:
        _drop_db(postgres_url, url)


def _changes(url: str, data) -> dict[str, int]:
    """Apply the second interval's changes on the platform; return the ids involved."""
    import psycopg

    posts = data.posts
    regular = posts.filter(pl.col("topic_id") != PM_TOPIC_ID, pl.col("post_type") == 1)
    # The reply to edit and the reply to delete: answers (not comments), in different threads.
    answers = regular.filter(pl.col("post_number") > 1, pl.col("id") < COMMENT_ID_OFFSET).sort("id")
    edited = answers.row(10, named=True)
    deleted = answers.filter(pl.col("topic_id") != edited["topic_id"]).row(20, named=True)
    liked = answers.row(30, named=True)
    hidden = answers.filter(~pl.col("topic_id").is_in([edited["topic_id"], deleted["topic_id"]])).row(40, named=True)
    replied_topic = regular.filter(pl.col("post_number") == 1).sort("id").row(5, named=True)
    new_topic_id, new_first, new_reply = 5_000_001, 5_000_001, 5_000_002
    next_number = int(posts.filter(pl.col("topic_id") == replied_topic["topic_id"])["post_number"].max()) + 1
    with psycopg.connect(url) as con:
        con.execute(
            "insert into topics (id, title, category_id, user_id, views, archetype, created_at, updated_at) "
            "values (%s, 'Best stout for winter?', 1, 7, 3, 'regular', %s, %s)",
            [new_topic_id, T_CHANGE, T_CHANGE],
        )
        con.execute(
            "insert into posts (id, topic_id, user_id, post_number, raw, last_version_at, created_at, updated_at) values "
            "(%s, %s, 7, 1, 'Which imperial stout do you drink when it snows?', %s, %s, %s), "
            "(%s, %s, 8, %s, 'Try a barrel-aged one, they warm you up.', %s, %s, %s)",
            [
                new_first,
                new_topic_id,
                T_CHANGE,
                T_CHANGE,
                T_CHANGE,
                new_reply,
                replied_topic["topic_id"],
                next_number,
                T_CHANGE,
                T_CHANGE,
                T_CHANGE,
            ],
        )
        con.execute(
            "update posts set raw = raw || ' [edited: added the brewery name]', version = 2, "
            "last_version_at = %s, updated_at = %s where id = %s",
            [T_CHANGE, T_CHANGE, edited["id"]],
        )
        con.execute(
            "update posts set deleted_at = %s, updated_at = %s where id = %s", [T_CHANGE, T_CHANGE, deleted["id"]]
        )
        con.execute("update posts set hidden = true, updated_at = %s where id = %s", [T_CHANGE, hidden["id"]])
        con.execute(
            "insert into post_actions (id, post_id, user_id, post_action_type_id, created_at, updated_at) "
            "values (95000001, %s, 8, 2, %s, %s)",
            [liked["id"], T_CHANGE, T_CHANGE],
        )
        unliked = con.execute("select min(id) from post_actions where post_action_type_id = 2").fetchone()[0]
        con.execute(
            "update post_actions set deleted_at = %s, updated_at = %s where id = %s", [T_CHANGE, T_CHANGE, unliked]
        )
    return {
        "unliked": unliked,
        "hidden": hidden["id"],
        "hidden_thread": hidden["topic_id"],
        "edited": edited["id"],
        "deleted": deleted["id"],
        "deleted_thread": deleted["topic_id"],
        "liked": liked["id"],
        "new_first": new_first,
        "new_reply": new_reply,
    }


def _counts(wh: Path, run_id: str) -> dict[str, dict]:
    con = connect(wh, read_only=True)
    try:
        rows = frame(con, "select * from ops.stream_counts where run_id = ?", [run_id])
    finally:
        con.close()
    return {r["stream"]: r for r in rows.iter_rows(named=True)}


def _snapshot(wh: Path) -> dict[str, object]:
    con = connect(wh, read_only=True)
    try:
        return {
            "content": frame(con, "select * from staging.content order by content_id"),
            "events": frame(con, "select * from staging.engagement_events order by event_id"),
            "users": one(con, "select count(*) from staging.users")[0],
            "scores": one(con, "select count(*) from moderation.scores")[0],
            "hot": frame(con, "select content_id, replies from marts.hot_content"),
            "daily": frame(con, "select day, replies, events from marts.engagement_daily"),
            "live": one(con, "select count(*) from staging.live_content")[0],
            "marks": frame(
                con, "select query, watermark_value, watermark_key from ops.source_watermarks order by query"
            ),
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def two_intervals(discourse_db: str, beer_dump: Path, tmp_path_factory: pytest.TempPathFactory):
    """Initial load to T1, the platform's changes, the second interval to T2, and its re-run."""
    tmp = tmp_path_factory.mktemp("pg")
    settings = load_settings(
        warehouse=tmp / "warehouse.duckdb",
        serving=tmp / "serving.duckdb",
        scorer="lexical",
        review_store_url=f"sqlite:///{tmp / 'review.sqlite'}",
        postgres_settle_seconds=0,
    )
    from pydantic import SecretStr

    spec = SourceSpec(
        kind="postgres", dsn=SecretStr(discourse_db), preset="discourse", postgres_options=postgres_options(settings)
    )
    first = run_pipeline(settings, spec, until=T1)
    before = _snapshot(settings.warehouse)
    ids = _changes(discourse_db, discourse_data(beer_dump))
    second = run_pipeline(settings, spec, until=T2)  # from the watermarks
    after = _snapshot(settings.warehouse)
    rerun = run_pipeline(settings, spec, since=T1, until=T2)  # the same interval again, by date
    again = _snapshot(settings.warehouse)
    return {
        "settings": settings,
        "runs": (first, second, rerun),
        "snaps": (before, after, again),
        "ids": ids,
        "data": discourse_data(beer_dump),
    }


def test_initial_load_counts_equal_the_platform(two_intervals) -> None:
    data = two_intervals["data"]
    first = two_intervals["runs"][0]
    counts = _counts(two_intervals["settings"].warehouse, first.run_id)
    before = two_intervals["snaps"][0]
    # Computed from the fixture tables, independently of the connector.
    regular_posts = data.posts.filter(pl.col("topic_id") != PM_TOPIC_ID)
    member_posts = regular_posts.filter(pl.col("post_type") == 1)
    regular_topics = data.topics.filter(pl.col("archetype") == "regular").height
    actions = data.post_actions.filter(pl.col("post_id").is_in(member_posts["id"].implode()))
    member_views = data.topic_views.filter(pl.col("user_id").is_not_null()).height
    assert counts["users"]["read"] == counts["users"]["inserted"] == data.users.height == 426
    assert counts["content"]["read"] == regular_posts.height + regular_topics  # first posts are read twice
    assert counts["content"]["inserted"] == member_posts.height == 1809
    assert json.loads(counts["content"]["skip_rules"]) == {
        "whisper (post_type 4: visible to staff only)": 1,
        "read again in this extract (the later copy is kept)": regular_topics,
    }
    assert counts["engagement_events"]["read"] == actions.height + member_views
    assert counts["engagement_events"]["inserted"] == actions.height + member_views
    assert before["content"].height == member_posts.height
    assert WHISPER_POST_ID not in before["content"]["content_id"].cast(pl.Int64).to_list()
    # Community reports: the five flags, with their Discourse flag types.
    reports = before["events"].filter(pl.col("event_type") == "report")
    flags = sorted(json.loads(p)["flag_type"] for p in reports["properties"])
    assert flags == ["illegal", "inappropriate", "notify_moderators", "off_topic", "spam"]
    note = next(json.loads(p) for p in reports["properties"] if json.loads(p)["flag_type"] == "notify_moderators")
    assert note["message"] == "This answer is an advert for a brewery shop." and note["status"] == "pending"
    likes = before["events"].filter(pl.col("event_type") == "like").height
    assert likes == data.post_actions.filter(pl.col("post_action_type_id") == 2).height
    # Private messages never reach the warehouse.
    assert not before["content"]["body_text"].str.contains("advert for a brewery shop").any()
    # Threads: a reply's thread is its topic's first post; a comment's parent the post it answered.
    first_posts = data.posts.filter(pl.col("post_number") == 1).select(
        pl.col("topic_id"), pl.col("id").cast(pl.String).alias("fp")
    )
    joined = (
        before["content"]
        .with_columns(pl.col("content_id").cast(pl.Int64).alias("id"))
        .join(data.posts.select("id", "topic_id"), on="id")
        .join(first_posts, on="topic_id")
    )
    assert (joined["thread_id"] == joined["fp"]).all()


@pytest.mark.full_data
def test_full_dump_initial_load_matches_the_readme(postgres_url: str, full_beer_dump: Path, tmp_path: Path) -> None:
    """README ("PostgreSQL source"): the whole dump's Discourse copy, first load."""
    from pydantic import SecretStr

    url = _create_db(postgres_url)
    try:
        load_discourse(url, discourse_data(full_beer_dump))
        settings = load_settings(
            warehouse=tmp_path / "w.duckdb",
            serving=tmp_path / "s.duckdb",
            scorer="lexical",
            review_store_url=f"sqlite:///{tmp_path / 'review.sqlite'}",
            postgres_settle_seconds=0,
        )
        spec = SourceSpec(
            kind="postgres", dsn=SecretStr(url), preset="discourse", postgres_options=postgres_options(settings)
        )
        run = run_pipeline(settings, spec, until=T1)
    finally:
        _drop_db(postgres_url, url)
    counts = _counts(settings.warehouse, run.run_id)
    con = connect(settings.warehouse, read_only=True)
    try:
        events = dict(con.execute("select event_type, count(*) from staging.engagement_events group by 1").fetchall())
    finally:
        con.close()
    assert (counts["users"]["read"], counts["content"]["read"], counts["content"]["inserted"]) == (3948, 4441, 3849)
    assert json.loads(counts["content"]["skip_rules"]) == {
        "whisper (post_type 4: visible to staff only)": 1,
        "read again in this extract (the later copy is kept)": 591,
    }
    assert counts["engagement_events"]["read"] == sum(events.values()) == 12161
    assert events == {"like": 8862, "report": 5, "view": 3294}


def test_second_interval_applies_exactly_the_platform_changes(two_intervals) -> None:
    _, second, _ = two_intervals["runs"]
    before, after, _ = two_intervals["snaps"]
    ids = two_intervals["ids"]
    counts = _counts(two_intervals["settings"].warehouse, second.run_id)
    # posts: new first post, new reply, edit, delete, hide; topics: the new topic's first post again;
    # post_actions: the new like and the withdrawn one.
    assert {k: counts["content"][k] for k in ("read", "inserted", "updated", "unchanged", "skipped")} == {
        "read": 6,
        "inserted": 2,
        "updated": 3,
        "unchanged": 0,
        "skipped": 1,
    }
    assert {k: counts["engagement_events"][k] for k in ("read", "inserted", "updated", "unchanged")} == {
        "read": 2,
        "inserted": 1,
        "updated": 1,
        "unchanged": 0,
    }
    assert counts["users"]["read"] == 0
    assert after["content"].height == before["content"].height + 2
    assert after["events"].height == before["events"].height + 1
    old = before["content"].filter(pl.col("content_id") == str(ids["edited"])).row(0, named=True)
    new = after["content"].filter(pl.col("content_id") == str(ids["edited"])).row(0, named=True)
    assert new["content_hash"] != old["content_hash"] and new["edited_at"] == T_CHANGE
    assert new["body_text"].endswith("[edited: added the brewery name]")
    # Re-scored: 3 new texts (2 new posts and the edit) got a score row; the deletion did not.
    assert after["scores"] == before["scores"] + 3
    gone = after["content"].filter(pl.col("content_id") == str(ids["deleted"])).row(0, named=True)
    assert gone["deleted_at"] == T_CHANGE
    hid = after["content"].filter(pl.col("content_id") == str(ids["hidden"])).row(0, named=True)
    assert hid["hidden"] is True and hid["deleted_at"] is None
    assert after["live"] == before["live"] + 2 - 2
    # The deleted and the hidden reply leave the marts: their threads have one reply fewer ...
    for thread in (str(ids["deleted_thread"]), str(ids["hidden_thread"])):
        r_before = before["hot"].filter(pl.col("content_id") == thread)["replies"].item()
        r_after = after["hot"].filter(pl.col("content_id") == thread)["replies"].item()
        assert r_after == r_before - 1, thread
    # ... and its day one reply fewer; the new like is one more event on its day.
    day = gone["created_at"].date()
    replies = {
        s: d.filter(pl.col("day") == day)["replies"].item() for s, d in (("b", before["daily"]), ("a", after["daily"]))
    }
    assert replies["a"] == replies["b"] - (2 if hid["created_at"].date() == day else 1)
    like_day = after["daily"].filter(pl.col("day") == T_CHANGE.date())
    assert like_day["events"].item() == 1 and like_day["replies"].item() == 1
    new_like = after["events"].filter(pl.col("event_id") == "pa:95000001").row(0, named=True)
    assert new_like["event_type"] == "like" and new_like["content_id"] == str(ids["liked"])
    unliked = f"pa:{ids['unliked']}"
    assert before["events"].filter(pl.col("event_id") == unliked)["event_type"].item() == "like"
    assert after["events"].filter(pl.col("event_id") == unliked)["event_type"].item() == "like_withdrawn"
    # Watermarks moved to the changes, in the source's terms.
    marks = {r["query"]: r for r in after["marks"].iter_rows(named=True)}
    assert (
        marks["posts"]["watermark_value"] == T_CHANGE
        and json.loads(marks["posts"]["watermark_key"]) == ids["new_reply"]
    )
    assert marks["post_actions"]["watermark_value"] == T_CHANGE


def test_rerun_of_the_interval_changes_nothing(two_intervals) -> None:
    _, _, rerun = two_intervals["runs"]
    _, after, again = two_intervals["snaps"]
    counts = _counts(two_intervals["settings"].warehouse, rerun.run_id)
    assert counts["content"]["read"] == 6 and counts["content"]["inserted"] == counts["content"]["updated"] == 0
    assert counts["engagement_events"]["read"] == 2
    assert counts["engagement_events"]["inserted"] == counts["engagement_events"]["updated"] == 0
    assert after["content"].equals(again["content"]) and after["events"].equals(again["events"])
    assert again["scores"] == after["scores"] and again["marks"].equals(after["marks"])
    assert again["hot"].sort("content_id").equals(after["hot"].sort("content_id"))


# ---------------------------------------------------------------------------------------------
# Paging, retries, timeouts and mappings on a small table


MAPPING = """
source = "tiny"
[queries.items]
stream = "content"
watermark_column = "updated_at"
key_column = "content_id"
sql = \"\"\"
select id as content_id, 'post' as kind, null::text as thread_id, null::text as parent_id, 'u1' as author_id,
       created_at, null::timestamp as edited_at, 'title ' || id as title, body as body_text,
       array[]::text[] as tags, 0::bigint as score, null::bigint as view_count, updated_at {extra}
from items
\"\"\"
"""


@pytest.fixture
def tiny_db(postgres_db: str, tmp_path: Path) -> tuple[str, Path]:
    """12 items of which 10 share one updated_at; and a mapping file for them."""
    import psycopg

    with psycopg.connect(postgres_db) as con:
        con.execute(
            "create table items (id integer primary key, body text, created_at timestamp, updated_at timestamp)"
        )
        same = datetime(2024, 5, 1, 12)
        rows = [(i, f"item {i}", same - timedelta(days=1), same) for i in range(1, 11)]
        rows += [
            (11, "early", same - timedelta(days=2), same - timedelta(hours=1)),
            (12, "late", same, same + timedelta(hours=1)),
        ]
        with con.cursor() as cur:
            cur.executemany("insert into items values (%s, %s, %s, %s)", rows)
    path = tmp_path / "tiny.toml"
    path.write_text(MAPPING.format(extra=""), encoding="utf-8")
    return postgres_db, path


def test_rows_sharing_a_timestamp_across_pages_are_neither_skipped_nor_repeated(tiny_db) -> None:
    url, path = tiny_db
    pages: list[int] = []
    ex = extract_postgres(url, load_mapping(path), now=NOW, page_size=3, on_page=lambda q, n, rows: pages.append(rows))
    assert pages == [3, 3, 3, 3, 0]
    assert ex.content["content_id"].to_list() == [str(i) for i in [11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]]
    assert ex.counts["content"].read == 12 and ex.counts["content"].skipped == 0
    # Resume from a watermark in the middle of the equal-timestamp run: exactly the rest.
    from warehouse.sources.postgres import QueryWatermark

    mark = QueryWatermark("items", "updated_at", "content_id", datetime(2024, 5, 1, 12), 6)
    rest = extract_postgres(url, load_mapping(path), watermarks={"items": mark}, now=NOW, page_size=2)
    assert rest.content["content_id"].to_list() == ["7", "8", "9", "10", "12"]


def test_watermark_resume_reads_a_late_row_with_the_same_timestamp(tiny_db) -> None:
    import psycopg

    from warehouse.sources.postgres import QueryWatermark

    url, path = tiny_db
    first = extract_postgres(url, load_mapping(path), now=NOW, until=datetime(2024, 5, 1, 12, 30), page_size=4)
    (mark,) = first.source_watermarks
    assert (mark.value, mark.key) == (datetime(2024, 5, 1, 12), 10)
    with psycopg.connect(url) as con:
        con.execute("insert into items values (13, 'same time, committed late', '2024-04-01', '2024-05-01 12:00')")
    second = extract_postgres(url, load_mapping(path), watermarks={"items": mark}, now=NOW, page_size=4)
    assert second.content["content_id"].to_list() == ["13", "12"]
    assert isinstance(mark, QueryWatermark)


def test_a_connection_killed_mid_read_is_retried_and_loses_nothing(tiny_db) -> None:
    import psycopg

    url, path = tiny_db
    clean = extract_postgres(url, load_mapping(path), now=NOW, page_size=3)
    killed: list[int] = []

    def kill_after_first_page(query: str, page: int, rows: int) -> None:
        if page == 1 and not killed:
            with psycopg.connect(url, autocommit=True) as other:
                n = other.execute(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                    "where datname = current_database() and pid <> pg_backend_pid()"
                ).fetchone()[0]
            killed.append(n)

    retried = extract_postgres(
        url, load_mapping(path), now=NOW, page_size=3, backoff_s=0.01, on_page=kill_after_first_page
    )
    assert killed == [1]
    assert retried.content.equals(clean.content)
    assert retried.counts["content"].read == 12 and retried.counts["content"].skipped == 0
    assert retried.source_watermarks == clean.source_watermarks


def test_statement_timeout_is_honoured(tiny_db, tmp_path: Path) -> None:
    url, _ = tiny_db
    slow = tmp_path / "slow.toml"
    slow.write_text(MAPPING.format(extra=", pg_sleep(0.3) as slept"), encoding="utf-8")
    with pytest.raises(
        PostgresSourceError, match=r"statement_timeout 0\.1s exceeded on every try.*PULSE_POSTGRES_STATEMENT_TIMEOUT"
    ):
        extract_postgres(url, load_mapping(slow), now=NOW, statement_timeout_s=0.1, max_attempts=2, backoff_s=0.01)


def test_read_only_transaction(tiny_db, tmp_path: Path) -> None:
    url, _ = tiny_db
    writer = tmp_path / "writer.toml"
    writer.write_text(
        MAPPING.replace("from items", "from items, lateral (select nextval('s')) as n").format(extra=""),
        encoding="utf-8",
    )
    import psycopg

    with psycopg.connect(url) as con:
        con.execute("create sequence s")
    with pytest.raises(PostgresSourceError, match="read-only transaction"):
        extract_postgres(url, load_mapping(writer), now=NOW, max_attempts=1)


def test_unreachable_database_error_names_no_password() -> None:
    dsn = "postgresql://reader:s3cret-pw@127.0.0.1:1/forum"
    with pytest.raises(PostgresSourceError) as err:
        extract_postgres(dsn, load_mapping(preset="discourse"), now=NOW, max_attempts=2, backoff_s=0.01)
    assert "s3cret-pw" not in str(err.value) and "reader:***@127.0.0.1:1/forum" in str(err.value)
    assert redact_dsn("host=db password=abc dbname=x") == "host=db password=*** dbname=x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[queries.p]\nstream = 'content'\nsql = 'select 1'\nwatermark_column = 'updated_at'\n",
            r"queries\.p\.key_column: add it",
        ),
        (
            "[queries.p]\nstream = 'posts'\nsql = 'select 1'\nwatermark_column = 'u'\nkey_column = 'id'\n",
            r"queries\.p\.stream: .*'users', 'content' or 'engagement_events'",
        ),
        (
            "pagesize = 10\n[queries.p]\nstream = 'users'\nsql = 'select 1'\nwatermark_column = 'u'\nkey_column = 'id'\n",
            r"pagesize: remove it \(unknown key\)",
        ),
        (
            "[queries.p]\nstream = 'users'\nsql = 'delete from users'\nwatermark_column = 'u'\nkey_column = 'id'\n",
            r"queries\.p\.sql: .*must be a SELECT",
        ),
        (
            "[queries.p]\nstream = 'users'\nsql = 'select 1'\nwatermark_column = 'coalesce(a, b)'\nkey_column = 'id'\n",
            r"queries\.p\.watermark_column: .*not a plain column name",
        ),
        (
            "[queries.p]\nstream = 'users'\nsql = 'select 1'\nwatermark_column = 'u'\nkey_column = 'id'\ncolumns = { email = 'e' }\n",
            r"columns \['email'\] are not canonical users columns",
        ),
        ("queries = [", r"not valid TOML"),
    ],
)
def test_bad_mapping_file_names_the_key_and_the_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError, match=expected):
        load_mapping(path)


def test_mapping_missing_canonical_column_is_named(tiny_db, tmp_path: Path) -> None:
    url, _ = tiny_db
    path = tmp_path / "m.toml"
    path.write_text(MAPPING.replace("'u1' as author_id,", "").format(extra=""), encoding="utf-8")
    with pytest.raises(MappingError, match=r"query 'items' \(stream content\) returns no column \['author_id'\]"):
        extract_postgres(url, load_mapping(path), now=NOW)
    with pytest.raises(MappingError, match="unknown preset 'mastodon'; built-in presets: discourse"):
        load_mapping(preset="mastodon")


def test_watermarks_are_staged_at_extract_and_advanced_only_by_load(tiny_db, tmp_path: Path) -> None:
    from pydantic import SecretStr

    from pulse import steps
    from warehouse.load import upsert_batch

    url, path = tiny_db
    settings = load_settings(warehouse=tmp_path / "wh.duckdb", serving=tmp_path / "s.duckdb", postgres_settle_seconds=0)
    spec = SourceSpec(kind="postgres", dsn=SecretStr(url), mapping=path, postgres_options=postgres_options(settings))
    steps.extract(settings, "r1", spec)
    con = connect(settings.warehouse)
    try:
        assert one(con, "select count(*) from ops.source_watermarks")[0] == 0  # not at extract
        assert one(
            con, "select query, watermark_value, watermark_key from ops.source_watermarks_pending where run_id = 'r1'"
        ) == ("items", datetime(2024, 5, 1, 13), "12")
        upsert_batch(con, "r1")
        assert one(con, "select source, query, watermark_value, watermark_key from ops.source_watermarks") == (
            "tiny",
            "items",
            datetime(2024, 5, 1, 13),
            "12",
        )
        assert one(con, "select count(*) from ops.source_watermarks_pending")[0] == 0
        assert repr(spec).find(url.split("@")[0].split(":")[-1]) == -1  # the password is not in the spec's repr
    finally:
        con.close()


def test_cli_postgres_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from pulse.cli import app

    monkeypatch.delenv("PULSE_POSTGRES_DSN", raising=False)
    runner = CliRunner()
    args = [
        "run",
        "--source",
        "postgres",
        "--warehouse",
        str(tmp_path / "w.duckdb"),
        "--serving",
        str(tmp_path / "s.duckdb"),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "needs a DSN" in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[queries.p]\nstream = 'users'\n", encoding="utf-8")
    res = runner.invoke(app, [*args, "--dsn", "postgresql://reader:hunter22@db/forum", "--mapping", str(bad)])
    assert res.exit_code == 2 and "queries.p.sql: add it" in res.output and "hunter22" not in res.output
    res = runner.invoke(
        app,
        [*args, "--dsn", "postgresql://reader:hunter22@127.0.0.1:1/forum"],
        env={"PULSE_POSTGRES_MAX_ATTEMPTS": "1", "PULSE_REVIEW_STORE_URL": f"sqlite:///{tmp_path / 'r.sqlite'}"},
    )
    assert res.exit_code == 1 and "Source failed" in res.output and "reader:***@127.0.0.1:1/forum" in res.output
    assert "hunter22" not in res.output


def test_airflow_reads_the_dsn_from_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from pulse.airflow_tasks import platform_dsn

    monkeypatch.delenv("PULSE_POSTGRES_DSN", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_PULSE_PLATFORM", "postgresql://reader:pw%40x@replica.example:6432/forum")
    assert platform_dsn(load_settings()).get_secret_value() == "postgresql://reader:pw%40x@replica.example:6432/forum"
    monkeypatch.setenv("PULSE_POSTGRES_DSN", "postgresql://a:b@env/db")
    assert platform_dsn(load_settings()).get_secret_value() == "postgresql://a:b@env/db"
    monkeypatch.delenv("PULSE_POSTGRES_DSN")
    monkeypatch.setenv("PULSE_POSTGRES_CONN_ID", "no_such_connection")
    with pytest.raises(
        ValueError, match="set PULSE_POSTGRES_DSN or create the Airflow connection 'no_such_connection'"
    ):
        platform_dsn(load_settings())
