"""Data-subject requests on the real beer.stackexchange dump (the vendored slice): export, erasure,
tombstones, retention.

User 73 ("Andrew Cheong") wrote 76 items (questions, answers and comments) and cast 2
favourite votes in the slice; the expected counts are recomputed here from the XML files.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from lxml import etree

from pulse.privacy import export_user, forget_user
from pulse.settings import load_settings
from pulse.steps import SourceSpec, run_pipeline
from warehouse.db import connect, migrate
from warehouse.privacy import (
    ERASED_MARKER,
    RETENTION_MARKER,
    TOMBSTONE_RULE,
    UserNotFoundError,
    apply_retention,
    compact_database,
    pseudonym,
    scan_files,
)
from warehouse.privacy_keys import install, load_ring

SOURCE = "stackexchange:beer"
USER = "73"
NAME = "Andrew Cheong"
TITLE = "How does serving temperature affect the taste of beers?"  # his question p105


def _rows(path: Path) -> list[dict[str, str]]:
    return [dict(el.attrib) for el in etree.parse(str(path), etree.XMLParser(resolve_entities=False)).getroot()]


@pytest.fixture(scope="module")
def expected(beer_dump: Path) -> dict[str, int]:
    """User 73's records counted straight from the XML (community content only, as the connector maps it)."""
    posts = _rows(beer_dump / "Posts.xml")
    kind = {p["Id"]: p["PostTypeId"] for p in posts}
    mine_posts = [p for p in posts if p.get("OwnerUserId") == USER and p["PostTypeId"] in ("1", "2")]
    comments = [
        c for c in _rows(beer_dump / "Comments.xml") if c.get("UserId") == USER and kind.get(c["PostId"]) in ("1", "2")
    ]
    votes = [
        v
        for v in _rows(beer_dump / "Votes.xml")
        if v.get("UserId") == USER and v["VoteTypeId"] in ("1", "2", "3", "5") and kind.get(v["PostId"]) in ("1", "2")
    ]
    user = next(u for u in _rows(beer_dump / "Users.xml") if u["Id"] == USER)
    return {
        "content": len(mine_posts) + len(comments),
        "questions": sum(p["PostTypeId"] == "1" for p in mine_posts),
        "events": len(votes),
        "reputation": int(user["Reputation"]),
    }


def _count(path: Path, sql: str, params: list | None = None) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()[0][0]
    finally:
        con.close()


def _cells_containing(path: Path, needles: list[str]) -> dict[str, int]:
    """Every text/list cell of every table in the DuckDB file that contains a needle, per table.column."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = con.execute(
            "select table_schema, table_name, column_name, data_type from information_schema.columns "
            "where table_catalog = current_database() and (data_type = 'VARCHAR' or data_type like 'VARCHAR[]%')"
        ).fetchall()
        hits: dict[str, int] = {}
        for schema, table, column, dtype in cols:
            expr = f'"{column}"' if dtype == "VARCHAR" else f'array_to_string("{column}", chr(31))'
            n = con.execute(
                f'select count(*) from "{schema}"."{table}" where list_has_any('
                f"list_transform(?::varchar[], lambda n: contains(coalesce({expr}, ''), n)), [true])",
                [needles],
            ).fetchall()[0][0]
            if n:
                hits[f"{schema}.{table}.{column}"] = n
        return hits
    finally:
        con.close()


def _user_refs(path: Path) -> dict[str, int]:
    """Rows whose user-id columns still hold the raw id 73, per table."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_catalog = current_database() and column_name in ('user_id', 'author_id') "
            "and table_schema not in ('information_schema', 'pg_catalog')"
        ).fetchall()
        out = {}
        for schema, table, column in cols:
            n = con.execute(f'select count(*) from "{schema}"."{table}" where "{column}" = ?', [USER]).fetchall()[0][0]
            if n:
                out[f"{schema}.{table}.{column}"] = n
        return out
    finally:
        con.close()


def test_export_user_counts_match_the_dump(beer_copy: Path, expected: dict[str, int]) -> None:
    con = connect(beer_copy / "warehouse.duckdb")
    try:
        migrate(con)
        doc = export_user(con, SOURCE, USER)
    finally:
        con.close()
    assert (doc["schema"], doc["schema_version"]) == ("community-pulse/user-export", 1)
    assert doc["profile"]["display_name"] == NAME and doc["profile"]["reputation"] == expected["reputation"]
    assert expected["content"] == 76 and doc["counts"]["content"] == 76
    assert sum(c["kind"] == "question" for c in doc["content"]) == expected["questions"]
    assert doc["counts"]["engagement_events"] == expected["events"] == 2
    # one score per distinct text of theirs (lexical model), and JSON round-trips
    assert doc["counts"]["scores"] == len({c["content_hash"] for c in doc["content"]})
    assert json.loads(json.dumps(doc, default=str))["user_id"] == USER


@pytest.mark.parametrize("hostile", ["x' or 1=1 --", "73' --", "73; drop table staging.users", "%", "7_"])
def test_export_injection_strings_find_nothing_and_change_nothing(beer_copy: Path, hostile: str) -> None:
    wh = beer_copy / "warehouse.duckdb"
    users_before = _count(wh, "select count(*) from staging.users")
    con = connect(wh)
    try:
        migrate(con)
        with pytest.raises(UserNotFoundError, match="no data held"):
            export_user(con, SOURCE, hostile)
    finally:
        con.close()
    assert _count(wh, "select count(*) from staging.users") == users_before == 426


def _seed_store(tmp_path: Path, content_id: str, content_hash: str) -> object:
    from moderation.review_store import ReviewStore

    store = ReviewStore(f"sqlite:///{tmp_path / 'review.sqlite'}")
    store.create_schema()
    store.add_user("mod1", name="Mod One", email="mod1@example.org", role="moderator", password="correct horse battery")
    store.decide(
        source=SOURCE,
        content_id=content_id,
        action="remove",
        actor="mod1",
        expected_version=0,
        content_hash=content_hash,
        reason_code="spam",
        note=f"{NAME} again: zebracorn-note-7731",
        scores_json={"toxicity": 0.91},
    )
    return store


def test_forget_user_leaves_nothing_anywhere(beer_copy: Path, tmp_path: Path) -> None:
    wh, serving = beer_copy / "warehouse.duckdb", beer_copy / "serving.duckdb"
    before_bytes = scan_files([wh], [NAME, TITLE])
    assert before_bytes[str(wh)] == [NAME, TITLE]  # positive control: the scan sees them before
    content_before = _count(wh, "select count(*) from staging.content")
    hot_before = _count(serving, "select count(*) from marts.hot_content")
    replies_before = _count(serving, "select sum(replies) from marts.hot_content")
    # Member 268's comment c3388 mentions the name: the other member's own words, kept by design.
    mentions = _count(
        wh,
        "select count(*) from staging.content where author_id <> ? and (contains(body_text, ?) "
        "or contains(body_text, ?) or contains(title, ?))",
        [USER, NAME, TITLE, TITLE],
    )
    assert mentions == 1
    store = _seed_store(tmp_path, "p105", "h")
    report = forget_user(wh, SOURCE, USER, mode="redact", serving=serving, store=store)
    store.dispose()

    assert report.counts["staging.content"] == 76 and report.counts["staging.users"] == 1
    assert report.counts["staging.engagement_events"] == 2 and report.counts["review_store.decisions"] == 1
    assert report.residue == {} and report.counts["mentions_in_others_posts_kept"] == 1
    # nothing left, logically, in any table of the warehouse or the snapshot (but c3388's mention)
    assert _cells_containing(wh, [NAME, TITLE, "zebracorn-note-7731"]) == {
        "staging.content.body_text": 1,
        "staging.live_content.body_text": 1,
    }
    assert _cells_containing(serving, [NAME, TITLE, "zebracorn-note-7731"]) == {}
    for f in (wh, serving):
        assert _user_refs(f) == {}
    # nor in the bytes of the files (old blocks, WAL) nor the review store's SQLite file
    assert scan_files([wh, serving, tmp_path / "review.sqlite"], [TITLE, "zebracorn-note-7731"]) == {
        str(wh): [],
        str(serving): [],
        str(tmp_path / "review.sqlite"): [],
    }
    assert scan_files([serving, tmp_path / "review.sqlite"], [NAME]) == {
        str(serving): [],
        str(tmp_path / "review.sqlite"): [],
    }
    # redact keeps the counts: same items, same threads, same replies in the marts
    assert _count(wh, "select count(*) from staging.content") == content_before
    assert _count(wh, "select count(*) from staging.content where body_text = ?", [ERASED_MARKER]) == 76
    assert _count(serving, "select count(*) from marts.hot_content") == hot_before
    assert _count(serving, "select sum(replies) from marts.hot_content") == replies_before
    # the request is logged with counts only; the tombstone holds no id
    con = duckdb.connect(str(wh), read_only=True)
    try:
        kind, status, counts_json = con.execute(
            "select kind, status, counts_json from ops.privacy_requests where request_id = ?", [report.request_id]
        ).fetchall()[0]
        stone = con.execute("select * from ops.tombstones").fetchall()
    finally:
        con.close()
    assert (kind, status) == ("forget", "done")
    assert json.loads(counts_json)["staging.content"] == 76 and NAME not in counts_json
    assert len(stone) == 1 and USER not in {str(v) for v in stone[0]} and len(stone[0][1]) == 64


def test_duckdb_keeps_erased_bytes_until_the_file_is_rewritten(beer_copy: Path) -> None:
    """Why forget-user compacts: after delete + FORCE CHECKPOINT the name is still in free blocks."""
    wh = beer_copy / "warehouse.duckdb"
    report = forget_user(wh, SOURCE, USER, compact=False)
    assert report.compacted is False
    # DuckDB left the old blocks in the file: his question titles are still readable in its bytes
    assert list(report.residue) == [str(wh)] and TITLE in report.residue[str(wh)]
    assert _cells_containing(wh, [TITLE]) == {}  # ... though no table holds the title any more
    compact_database(wh)
    assert scan_files([wh], report.residue[str(wh)]) == {str(wh): []}
    again = forget_user(wh, SOURCE, USER)  # a repeated request (e.g. after a crash): nothing left, no residue
    assert again.residue == {} and again.counts["staging.users"] == again.counts["staging.content"] == 0


def test_forget_unknown_user_changes_nothing(beer_copy: Path) -> None:
    wh = beer_copy / "warehouse.duckdb"
    with pytest.raises(UserNotFoundError):
        forget_user(wh, SOURCE, "x' or 1=1 --")
    assert _count(wh, "select count(*) from ops.tombstones") == 0
    assert _count(wh, "select count(*) from staging.users") == 426


def test_reload_after_forget_does_not_bring_the_user_back(beer_copy: Path, beer_dump: Path) -> None:
    wh, serving = beer_copy / "warehouse.duckdb", beer_copy / "serving.duckdb"
    forget_user(wh, SOURCE, USER, serving=serving)
    settings = load_settings(warehouse=wh, serving=serving, scorer="lexical")
    summary = run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump))
    con = duckdb.connect(str(wh), read_only=True)
    try:
        counts = {
            r[0]: r[1:]
            for r in con.execute(
                "select stream, read, inserted, updated, unchanged, skipped, quarantined, skip_rules from ops.stream_counts "
                "where run_id = ?",
                [summary.run_id],
            ).fetchall()
        }
    finally:
        con.close()
    users = counts["users"]
    assert json.loads(users[6])[TOMBSTONE_RULE] == 1 and users[1:4] == (0, 0, 425)
    for read, ins, upd, unch, skipped, quar, _ in counts.values():
        assert read == ins + upd + unch + skipped + quar
    assert counts["content"][1:3] == (0, 0)  # redacted again exactly as at erasure: unchanged
    for f in (wh, serving):
        assert _cells_containing(f, [TITLE]) == {} and _user_refs(f) == {}
    assert _count(wh, "select count(*) from staging.users where display_name = ?", [NAME]) == 0


def test_delete_mode_removes_their_items_and_the_votes_on_them(beer_copy: Path) -> None:
    wh = beer_copy / "warehouse.duckdb"
    con = duckdb.connect(str(wh), read_only=True)
    try:
        content, votes_on = con.execute(
            "select (select count(*) from staging.content), (select count(*) from staging.engagement_events e "
            "join staging.content c using (source, content_id) where c.author_id = ?)",
            [USER],
        ).fetchall()[0]
    finally:
        con.close()
    report = forget_user(wh, SOURCE, USER, mode="delete")
    assert report.counts["staging.content"] == 76
    assert report.counts["staging.engagement_events (on their content)"] == votes_on > 0
    assert _count(wh, "select count(*) from staging.content") == content - 76
    assert _cells_containing(wh, [TITLE]) == {}


def test_retention_redacts_exactly_the_old_bodies(beer_copy: Path) -> None:
    wh = beer_copy / "warehouse.duckdb"
    now = datetime(2016, 1, 1)
    old = _count(
        wh, "select count(*) from staging.content where created_at < timestamp '2015-01-01' and body_text is not null"
    )
    hashes = _count(wh, "select count(distinct content_hash) from staging.content")
    scores = _count(wh, "select count(*) from moderation.scores")
    con = connect(wh)
    try:
        assert apply_retention(con, 365, now=now) == old > 1000
        assert apply_retention(con, 365, now=now) == 0  # idempotent
        assert apply_retention(con, None, now=now) == 0
        kept = con.execute(
            "select count(*) from staging.content where created_at >= timestamp '2015-01-01' and body_text = ?",
            [RETENTION_MARKER],
        ).fetchall()[0][0]
    finally:
        con.close()
    assert kept == 0
    assert _count(wh, "select count(*) from staging.content where body_text = ?", [RETENTION_MARKER]) == old
    assert _count(wh, "select count(distinct content_hash) from staging.content") == hashes
    assert _count(wh, "select count(*) from moderation.scores") == scores


def test_pseudonyms_in_marts_match_python_hmac(beer_copy: Path) -> None:
    wh = beer_copy / "warehouse.duckdb"
    con = duckdb.connect(str(wh), read_only=True)
    try:
        ring = load_ring()  # the privacy key lives outside the warehouse; a session gets it installed
        key = ring.current.pseudonym_key
        install(con, ring)
        raw = con.execute("select author_id from staging.content where content_id = 'p105'").fetchall()[0][0]
        sql = con.execute("select ops.pseudonym(?, ?)", [SOURCE, USER]).fetchall()[0][0]
    finally:
        con.close()
    assert raw == USER and sql == pseudonym(SOURCE, USER, key) and sql.startswith("u_") and len(sql) == 14
    serving = beer_copy / "serving.duckdb"
    assert (
        _count(serving, "select count(*) from marts.hot_content where content_id = 'p105' and author_id = ?", [sql])
        == 1
    )
    assert _count(serving, "select count(*) from marts.hot_content where author_id not like 'u\\_%' escape '\\'") == 0
    assert _count(serving, "select count(*) from marts.response_times where author_id = ?", [USER]) == 0
    assert "privacy_keys" not in {r for r in _count_tables(serving)}


def _count_tables(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()]
    finally:
        con.close()


def test_cli_export_and_forget(beer_copy: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pulse.cli import app

    _seed_store(tmp_path, "p105", "h").dispose()  # a moderator's decision on his question, in the live store
    env = {
        "PULSE_WAREHOUSE": str(beer_copy / "warehouse.duckdb"),
        "PULSE_SERVING": str(beer_copy / "serving.duckdb"),
        "PULSE_REVIEW_STORE_URL": f"sqlite:///{tmp_path / 'review.sqlite'}",
    }
    runner = CliRunner()
    out = tmp_path / "u.json"
    r = runner.invoke(
        app, ["privacy", "export-user", "--source", SOURCE, "--user-id", USER, "--out", str(out)], env=env
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["counts"]["content"] == 76 and doc["counts"]["review_store_decisions"] == 1
    assert doc["review_store_decisions"][0]["note"] == f"{NAME} again: zebracorn-note-7731"
    r = runner.invoke(
        app,
        ["privacy", "export-user", "--source", SOURCE, "--user-id", "x' or 1=1 --", "--out", str(tmp_path / "x.json")],
        env=env,
    )
    assert r.exit_code == 2 and "Not found" in r.output and not (tmp_path / "x.json").exists()
    r = runner.invoke(app, ["privacy", "forget-user", "--source", SOURCE, "--user-id", USER, "--yes"], env=env)
    assert r.exit_code == 0, r.output
    assert "staging.content 76" in r.output and "review_store.decisions 1" in r.output
    r = runner.invoke(
        app, ["privacy", "forget-user", "--source", SOURCE, "--user-id", USER, "--mode", "shred", "--yes"], env=env
    )
    assert r.exit_code == 2 and "PULSE_PRIVACY_ERASURE_MODE" in r.output


def test_forget_user_appends_its_tombstone_to_the_erasure_ledger(beer_copy: Path, tmp_path: Path) -> None:
    """The ledger a backup restore re-applies learns of the erasure at once (no sync step needed),
    and holds no identifier: only the tombstone's hash, the alias and the erased item ids."""
    from pulse.backup.ledger import read_ledger

    ledger = tmp_path / "elsewhere" / "erasure_ledger.jsonl"
    wh = beer_copy / "warehouse.duckdb"
    forget_user(wh, SOURCE, USER, ledger=ledger)
    entries = read_ledger(ledger)
    assert len(entries) == 1 and entries[0]["source"] == SOURCE and entries[0]["mode"] == "redact"
    assert len(entries[0]["content_ids"]) == 76  # user 73's items in the slice, found by their alias
    assert USER not in json.dumps({k: v for k, v in entries[0].items() if k != "content_ids"}).split('"')
    forget_user(wh, SOURCE, USER, ledger=ledger)  # a repeated request adds nothing
    assert len(read_ledger(ledger)) == 1
