"""``pulse backup`` (issue #15) on the vendored beer slice: restore after losing every data file,
restore never resurrects an erased member, a flipped byte fails ``verify`` naming the file,
restore refuses while a run is active, the next run continues from the restored watermarks,
partial restores, GFS retention (Hypothesis), PostgreSQL review store (real server), S3 (a real
local S3-compatible server: moto's server mode, started here)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pulse import backup as bk
from pulse.cli import app
from warehouse.db import migration_files

SOURCE = "stackexchange:beer"
USER = "73"
NAME = "Andrew Cheong"
NOTE = "zebracorn-note-7731"
KEY = "k" * 20 + "-test-backup-key-0123456789"
runner = CliRunner()


def _settings(folder: Path, **extra: Any) -> Any:
    from pulse.settings import load_settings

    kwargs = {
        "warehouse": folder / "data" / "warehouse.duckdb",
        "serving": folder / "data" / "serving.duckdb",
        "scorer": "lexical",
        "review_store_url": f"sqlite:///{folder / 'data' / 'review.sqlite'}",
        "erasure_ledger": folder / "keys" / "erasure_ledger.jsonl",
        "backup_key": KEY,
    }
    return load_settings(**(kwargs | extra))


def _seed_store(url: str) -> None:
    from moderation.review_store import ReviewStore

    store = ReviewStore(url, bcrypt_rounds=4)
    store.create_schema()
    store.add_user("mod1", name="Mod One", email="mod1@example.org", role="moderator", password="correct horse battery")
    store.add_user("boss", name="Boss", email="boss@example.org", role="admin", password="correct horse battery")
    store.decide(
        source=SOURCE,
        content_id="p105",
        action="remove",
        actor="mod1",
        expected_version=0,
        content_hash="h",
        reason_code="spam",
        note=f"{NAME} again: {NOTE}",
        scores_json={"toxicity": 0.91},
    )
    store.decide(
        source=SOURCE,
        content_id="p2",
        action="approve",
        actor="boss",
        expected_version=0,
        content_hash="h2",
        note="fine",
    )
    store.dispose()


@pytest.fixture(scope="module")
def built(beer_dump: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real pipeline run on the beer slice (lexical scorer) plus two moderators' decisions."""
    from pulse.steps import SourceSpec, run_pipeline

    folder = tmp_path_factory.mktemp("backup_built")
    s = _settings(folder)
    _seed_store(s.review_store_url.get_secret_value())
    run_pipeline(s, SourceSpec(kind="stackexchange", path=beer_dump))
    return folder


@pytest.fixture
def env(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any]:
    """A private copy of ``built`` and its settings; the CLI sees the same through the environment."""
    shutil.copytree(built / "data", tmp_path / "data", ignore=shutil.ignore_patterns("scoring"))
    s = _settings(tmp_path)
    monkeypatch.setenv("PULSE_BACKUP_KEY", KEY)
    monkeypatch.setenv("PULSE_WAREHOUSE", str(s.warehouse))
    monkeypatch.setenv("PULSE_SERVING", str(s.serving))
    monkeypatch.setenv("PULSE_REVIEW_STORE_URL", s.review_store_url.get_secret_value())
    monkeypatch.setenv("PULSE_ERASURE_LEDGER", str(s.erasure_ledger))
    monkeypatch.setenv("PULSE_SCORER", "lexical")
    return tmp_path, s


def _stats(path: Path) -> dict[str, dict[str, Any]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return bk.table_stats(con)
    finally:
        con.close()


def _store_rows(s: Any) -> tuple[list[tuple], list[dict]]:
    from moderation.review_store import ReviewStore

    store = ReviewStore.from_settings(s)
    try:
        users = sorted((u.username, u.name, u.role, u.active) for u in store.users())
        decisions = store.decisions().sort("decision_id").to_dicts()
    finally:
        store.dispose()
    return users, decisions


def _cli(*args: str) -> Any:
    return runner.invoke(app, ["backup", *args], catch_exceptions=False)


def _backup_id(result: Any) -> str:
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------------
# Done means (1): every data file gone, restored identical; the next run loads nothing twice


def test_restore_after_losing_every_data_file(env: tuple[Path, Any], beer_dump: Path) -> None:
    from pulse.steps import SourceSpec, run_pipeline, stream_counts

    root, s = env
    before, store_before = _stats(s.warehouse), _store_rows(s)
    assert store_before[0] == [("boss", "Boss", "admin", True), ("mod1", "Mod One", "moderator", True)]
    assert len(store_before[1]) == 2
    assert before["staging.content"]["rows"] == 1809 and before["staging.users"]["rows"] == 426
    backup_id = _backup_id(_cli("create", "--to", str(root / "backups")))

    shutil.rmtree(root / "data")  # warehouse, snapshot, review store: all gone
    done = _cli("restore", "--from", str(root / "backups"), "--yes")
    assert done.exit_code == 0, done.output
    assert f"Restored {backup_id}" in done.output

    assert _stats(s.warehouse) == before  # every table: same rows, same checksum
    assert _store_rows(s) == store_before  # same moderators, same decisions (notes included)
    con = duckdb.connect(str(s.serving), read_only=True)
    assert con.execute("select count(*) from marts.hot_content").fetchone()[0] == before["marts.hot_content"]["rows"]
    con.close()

    # The next run continues from the restored state: the same dump loads nothing twice.
    first = {r["stream"]: r for r in stream_counts(s, _last_run(s.warehouse)).iter_rows(named=True)}
    again = run_pipeline(s, SourceSpec(kind="stackexchange", path=beer_dump))
    counts = {r["stream"]: r for r in stream_counts(s, again.run_id).iter_rows(named=True)}
    assert {k: (v["inserted"], v["updated"]) for k, v in counts.items()} == {k: (0, 0) for k in first}
    assert {k: v["unchanged"] for k, v in counts.items()} == {k: v["inserted"] for k, v in first.items()}
    assert sum(v["inserted"] for v in first.values()) == 1809 + 426 + 5765


def _last_run(warehouse: Path) -> str:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            "select run_id from ops.runs where status = 'success' order by started_at desc limit 1"
        ).fetchone()[0]
    finally:
        con.close()


def test_backup_files_are_encrypted_and_watermarks_are_in_the_manifest(env: tuple[Path, Any]) -> None:
    root, s = env
    result = bk.create_backup(s, root / "backups")
    folder = root / "backups" / result.backup_id
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    assert len(files) == len(result.manifest["files"]) + 1  # + the manifest
    for f in files:
        data = f.read_bytes()
        for needle in (NAME.encode(), NOTE.encode(), b"PAR1", b"SQLite format 3", b"CREATE TABLE"):
            assert needle not in data, f"{f.name} holds {needle!r} in clear"
    m = result.manifest
    assert m["migration_level"] == migration_files()[-1].stem and m["review_store"]["tables"]["review_decisions"] == 2
    assert {w["stream"] for w in m["watermarks"]} == {"users", "content", "engagement_events"}
    assert m["tables"]["staging.engagement_events"]["rows"] == 5765
    # Without the key: nothing can be read.
    from pulse.settings import load_settings

    other = load_settings(warehouse=s.warehouse, backup_key="x" * 40)
    with pytest.raises(bk.VerifyError, match=r"manifest\.json\.enc: .*fails authentication"):
        bk.verify_backup(other, root / "backups", result.backup_id)


def test_no_key_is_a_configuration_error(env: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = env
    monkeypatch.delenv("PULSE_BACKUP_KEY")
    done = _cli("create", "--to", str(root / "backups"))
    assert done.exit_code == 2 and "PULSE_BACKUP_KEY is unset" in done.output
    assert not (root / "backups").exists() or not any((root / "backups").iterdir())


def test_backup_key_in_a_config_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulse.settings import ConfigError, Settings, load_settings

    path = tmp_path / "pulse.toml"
    path.write_text(f'scorer = "lexical"\nbackup_key = "{KEY}"\n', encoding="utf-8")
    monkeypatch.setitem(Settings.model_config, "toml_file", str(path))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "'backup_key'" in str(err.value) and "PULSE_BACKUP_KEY" in str(err.value) and KEY not in str(err.value)


def test_a_backup_after_an_erasure_holds_none_of_the_erased_bytes(env: tuple[Path, Any]) -> None:
    from pulse.privacy import forget_user
    from warehouse.privacy import scan_files

    root, s = env
    title = "How does serving temperature affect the taste of beers?"  # user 73's question p105
    from moderation.review_store import ReviewStore

    store = ReviewStore.from_settings(s)
    forget_user(s.warehouse, SOURCE, USER, mode="redact", serving=s.serving, store=store, compact=False)
    store.dispose()
    assert scan_files([s.warehouse], [title])[str(s.warehouse)] == [title]  # still in the file's free blocks
    result = bk.create_backup(s, root / "backups")
    fs, rootdir = bk.destination(root / "backups")
    plain = root / "decrypted"
    files = bk.fetch_files(fs, f"{rootdir}/{result.backup_id}", result.manifest, bk.master_key(s), plain)
    assert len(files) == len(result.manifest["files"])
    assert {k: v for k, v in scan_files(files.values(), [title, NAME]).items() if v} == {}


def test_benchmark_smoke(built: Path, tmp_path: Path) -> None:
    """benchmarks/backup.py's measurement on the built slice (structure and sanity, not speed)."""
    repo = Path(__file__).resolve().parents[2]
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from benchmarks.backup import measure, render
    from benchmarks.common import BenchConfig

    result = measure(BenchConfig.for_profile("smoke", work_dir=tmp_path), built / "data" / "warehouse.duckdb", 1)
    assert result["rows"] > 8000 and result["tables"] >= 40 and result["ratio"] > 3
    assert result["create_s"] > 0 and result["verify_s"] > 0 and result["restore_s"] > 0
    section = render(
        {"sizes": {"1": result}, "daily": {"1": {"rpo_max_h": 24.0, "rto_restore_s": result["restore_s"]}}}
    )
    assert "| 1x |" in section


# --------------------------------------------------------------------------------------------
# Done means (2): a pre-erasure backup restored, the member stays erased


def test_restoring_a_pre_erasure_backup_keeps_the_member_erased(env: tuple[Path, Any]) -> None:
    from moderation.review_store import ReviewStore
    from pulse.privacy import export_user, forget_user
    from warehouse.privacy import UserNotFoundError, has_tombstone, scan_files

    root, s = env
    backup_id = bk.create_backup(s, root / "backups").backup_id  # holds user 73 and the note
    store = ReviewStore.from_settings(s)
    report = forget_user(s.warehouse, SOURCE, USER, mode="redact", serving=s.serving, store=store)
    store.dispose()
    assert report.counts["staging.content"] == 76 and report.residue == {}
    # The daily backup (or `pulse backup sync-ledger`) writes the erasure to the ledger, beside the key.
    assert _cli("sync-ledger").exit_code == 0
    ledger = bk.read_ledger(s.erasure_ledger)
    assert len(ledger) == 1 and ledger[0]["mode"] == "redact" and len(ledger[0]["content_ids"]) == 76
    assert set(ledger[0]) == {"at", "request_id", "source", "user_id_hash", "mode", "alias", "key_id", "content_ids"}
    assert USER not in ledger[0].values() and NAME not in str(ledger)  # no identifier in the ledger
    shutil.rmtree(root / "data")  # the disaster: the erasure is no longer in any data file

    done = _cli("restore", "--from", str(root / "backups"), "--id", backup_id, "--yes")
    assert done.exit_code == 0, done.output
    assert "erasures re-applied: 1" in done.output
    con = duckdb.connect(str(s.warehouse))
    try:
        assert has_tombstone(con, SOURCE, USER)
        with pytest.raises(UserNotFoundError):
            export_user(con, SOURCE, USER)
        assert (
            con.execute("select count(*) from staging.content where author_id = ?", [ledger[0]["alias"]]).fetchone()[0]
            == 76
        )
    finally:
        con.close()
    _, decisions = _store_rows(s)
    assert [d["note"] for d in decisions if d["content_id"] == "p105"] == [None]
    review = Path(s.review_store_url.get_secret_value().removeprefix("sqlite:///"))
    assert scan_files([s.warehouse, s.serving, review], [NOTE]) == {
        str(s.warehouse): [],
        str(s.serving): [],
        str(review): [],
    }
    assert scan_files([s.serving], [NAME]) == {str(s.serving): []}


def test_restoring_only_a_pre_erasure_review_store_blanks_the_notes_again(env: tuple[Path, Any]) -> None:
    from moderation.review_store import ReviewStore
    from pulse.privacy import forget_user
    from warehouse.privacy import scan_files

    root, s = env
    backup_id = bk.create_backup(s, root / "backups").backup_id  # the store still holds the note on p105
    store = ReviewStore.from_settings(s)
    forget_user(s.warehouse, SOURCE, USER, mode="redact", serving=s.serving, store=store)
    store.dispose()
    report = bk.restore_backup(s, root / "backups", backup_id, only="review-store")
    assert report.parts == ["review-store"] and report.erasures_reapplied == []  # the warehouse kept its tombstone
    _, decisions = _store_rows(s)
    assert {d["content_id"]: d["note"] for d in decisions} == {"p105": None, "p2": "fine"}
    review = Path(s.review_store_url.get_secret_value().removeprefix("sqlite:///"))
    assert scan_files([review], [NOTE, NAME]) == {str(review): []}


# --------------------------------------------------------------------------------------------
# Done means (3): a corrupted backup is refused by verify, naming the file


def test_a_flipped_byte_anywhere_fails_verify_naming_the_file(env: tuple[Path, Any]) -> None:
    root, s = env
    result = bk.create_backup(s, root / "backups")
    folder = root / "backups" / result.backup_id
    ok = bk.verify_backup(s, root / "backups")
    assert (ok.files, ok.tables, ok.review_store_tables) == (
        len(result.manifest["files"]),
        len(result.manifest["tables"]),
        5,  # review_users, _items, _decisions, _signin_failures, _admin_actions
    )
    names = [f["name"] for f in result.manifest["files"]] + [bk.MANIFEST]
    assert len(names) >= 40
    for i, name in enumerate(names):
        path = folder / name
        data = bytearray(path.read_bytes())
        at = (i * 7919) % len(data)
        data[at] ^= 0x01
        path.write_bytes(bytes(data))
        with pytest.raises(bk.VerifyError) as err:
            bk.verify_backup(s, root / "backups", result.backup_id)
        assert err.value.file == name, f"byte {at} of {name}: {err.value}"
        data[at] ^= 0x01
        path.write_bytes(bytes(data))
    # The CLI: exit 1, the file named; a missing file too.
    (folder / "warehouse" / "staging_users.parquet.enc").unlink()
    done = _cli("verify", "--in", str(root / "backups"))
    assert done.exit_code == 1 and "warehouse/staging_users.parquet.enc: missing" in done.output


# --------------------------------------------------------------------------------------------
# Restore semantics


def test_restore_refuses_while_a_run_is_active(env: tuple[Path, Any]) -> None:
    root, s = env
    bk.create_backup(s, root / "backups")
    con = duckdb.connect(str(s.warehouse))
    con.execute(
        "insert into ops.runs (run_id, source, started_at, status, trigger) values "
        "('airflow__scheduled__x', 'stackexchange:beer', now()::timestamp, 'running', 'airflow')"
    )
    con.close()
    before = _stats(s.warehouse)
    done = _cli("restore", "--from", str(root / "backups"), "--yes")
    assert done.exit_code == 1
    assert "Refused" in done.output and "airflow__scheduled__x" in done.output and "is active" in done.output
    assert _stats(s.warehouse) == before  # nothing replaced
    with pytest.raises(bk.RunActiveError):
        bk.create_backup(s, root / "backups")


def test_partial_restore_of_the_review_store_leaves_the_warehouse(env: tuple[Path, Any]) -> None:
    from moderation.review_store import ReviewStore

    root, s = env
    backup_id = bk.create_backup(s, root / "backups").backup_id
    users_before, decisions_before = _store_rows(s)
    store = ReviewStore.from_settings(s)
    store.deactivate("mod1")  # the accident
    store.decide(
        source=SOURCE, content_id="p140", action="escalate", actor="boss", expected_version=0, content_hash="h3"
    )
    store.dispose()
    con = duckdb.connect(str(s.warehouse))
    con.execute("delete from marts.hot_content where true")  # a change the partial restore must not undo
    con.close()
    warehouse_now = _stats(s.warehouse)

    done = _cli("restore", "--from", str(root / "backups"), "--id", backup_id, "--only", "review-store", "--yes")
    assert done.exit_code == 0, done.output
    assert _store_rows(s) == (users_before, decisions_before)
    assert _stats(s.warehouse) == warehouse_now
    bad = _cli("restore", "--from", str(root / "backups"), "--only", "serving", "--yes")
    assert bad.exit_code == 2


def test_partial_restore_of_the_warehouse(env: tuple[Path, Any]) -> None:
    root, s = env
    before = _stats(s.warehouse)
    bk.create_backup(s, root / "backups")
    s.warehouse.unlink()
    report = bk.restore_backup(s, root / "backups", only="warehouse")
    assert report.parts == ["warehouse"] and report.tables == len(before) and report.published
    assert _stats(s.warehouse) == before


# --------------------------------------------------------------------------------------------
# Retention: grandfather-father-son


def _oracle(times: set[datetime], daily: int, weekly: int, monthly: int, yearly: int) -> set[datetime]:
    """The policy stated per period: the newest backup of each of the n newest periods, plus the newest."""
    keep = {max(times)}
    for n, key in (
        (daily, lambda t: t.date()),
        (weekly, lambda t: tuple(t.isocalendar()[:2])),
        (monthly, lambda t: (t.year, t.month)),
        (yearly, lambda t: t.year),
    ):
        groups: dict[Any, list[datetime]] = {}
        for t in times:
            groups.setdefault(key(t), []).append(t)
        for k in sorted(groups, reverse=True)[:n]:
            keep.add(max(groups[k]))
    return keep


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offsets=st.sets(st.integers(min_value=0, max_value=3 * 365 * 24 * 4), min_size=1, max_size=120),
    daily=st.integers(0, 10),
    weekly=st.integers(0, 6),
    monthly=st.integers(0, 14),
    yearly=st.integers(0, 3),
)
def test_gfs_keeps_exactly_the_expected_set(
    offsets: set[int], daily: int, weekly: int, monthly: int, yearly: int
) -> None:
    start = datetime(2024, 1, 1)
    times = {start + timedelta(minutes=15 * o) for o in offsets}
    kept = bk.gfs_keep(times, daily=daily, weekly=weekly, monthly=monthly, yearly=yearly)
    assert kept == _oracle(times, daily, weekly, monthly, yearly)
    assert max(times) in kept  # never deletes the newest
    assert len(kept) <= 1 + daily + weekly + monthly + yearly
    assert (
        bk.gfs_keep(kept, daily=daily, weekly=weekly, monthly=monthly, yearly=yearly) == kept
    )  # a second prune keeps all


def test_prune_daily_backups_of_one_quarter(tmp_path: Path) -> None:
    from pulse.settings import load_settings

    s = load_settings(backup_key=KEY)  # 7 daily, 4 weekly, 12 monthly
    for day in range(90):  # 2026-01-01 .. 2026-03-31, 02:00 UTC
        t = datetime(2026, 1, 1, 2) + timedelta(days=day)
        folder = tmp_path / f"{t:%Y%m%dT%H%M%S}Z-{day:06x}"
        folder.mkdir()
        (folder / bk.MANIFEST).write_bytes(b"x")
    (tmp_path / "20260330T020000Z-abcdef").mkdir()  # unfinished, older than a day
    result = bk.prune_backups(s, tmp_path, now=datetime(2026, 3, 31, 3))
    kept_days = sorted(k[:8] for k in result["kept"])
    # daily: Mar 25-31; weekly (ISO weeks): + Mar 22, Mar 15; monthly: + Feb 28, Jan 31
    assert kept_days == [
        "20260131",
        "20260228",
        "20260315",
        "20260322",
        "20260325",
        "20260326",
        "20260327",
        "20260328",
        "20260329",
        "20260330",
        "20260331",
    ]
    assert len(result["deleted"]) == 90 - 11 + 1
    assert sorted(p.name[:8] for p in tmp_path.iterdir()) == kept_days


# --------------------------------------------------------------------------------------------
# PostgreSQL review store (real server)


def test_postgresql_review_store_through_pg_dump(
    env: tuple[Path, Any], postgres_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    root, _ = env
    s = _settings(root, review_store_url=postgres_db)
    monkeypatch.setenv("PULSE_REVIEW_STORE_URL", postgres_db)
    _seed_store(postgres_db)
    before = _store_rows(s)
    result = bk.create_backup(s, root / "backups")
    assert result.manifest["review_store"] == {
        "kind": "postgresql",
        "tables": {"review_decisions": 2, "review_items": 2, "review_signin_failures": 0, "review_users": 2},
    }
    assert bk.verify_backup(s, root / "backups").review_store_tables == 4
    engine = sa.create_engine(postgres_db.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as c:
        c.execute(sa.text("drop table review_decisions, review_items, review_users cascade"))
    engine.dispose()
    report = bk.restore_backup(s, root / "backups", only="review-store")
    assert report.review_store_rows == {
        "review_decisions": 2,
        "review_items": 2,
        "review_signin_failures": 0,
        "review_users": 2,
    }
    assert _store_rows(s) == before


# --------------------------------------------------------------------------------------------
# S3: a real S3-compatible server (moto's server mode) on a free port


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(key, value)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto's S3 server did not start")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)


def test_s3_destination(env: tuple[Path, Any], s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    root, _ = env
    monkeypatch.setenv("PULSE_BACKUP_STORAGE_OPTIONS__ENDPOINT_URL", s3_server)
    s = _settings(root, backup_storage_options={"endpoint_url": s3_server})
    fs = s3fs.S3FileSystem(endpoint_url=s3_server, skip_instance_cache=True)
    fs.mkdir("pulse-backups")
    before, store_before = _stats(s.warehouse), _store_rows(s)
    backup_id = _backup_id(_cli("create", "--to", "s3://pulse-backups/community"))
    stored = fs.find(f"pulse-backups/community/{backup_id}")
    assert f"pulse-backups/community/{backup_id}/{bk.MANIFEST}" in stored and len(stored) >= 40
    listed = _cli("list", "--in", "s3://pulse-backups/community")
    assert listed.exit_code == 0 and backup_id in listed.output and "ok" in listed.output
    assert _cli("verify", "--in", "s3://pulse-backups/community").exit_code == 0
    shutil.rmtree(root / "data")
    done = _cli("restore", "--from", "s3://pulse-backups/community", "--yes")
    assert done.exit_code == 0, done.output
    assert _stats(s.warehouse) == before and _store_rows(s) == store_before
    # A flipped byte in the object store is caught too.
    name = f"pulse-backups/community/{backup_id}/warehouse/staging_content.parquet.enc"
    data = bytearray(fs.cat_file(name))
    data[len(data) // 2] ^= 0x80
    fs.pipe_file(name, bytes(data))
    bad = _cli("verify", "--in", "s3://pulse-backups/community")
    assert bad.exit_code == 1 and "warehouse/staging_content.parquet.enc" in bad.output
