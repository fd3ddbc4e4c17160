"""Owner-only files (issue 14, "Least privilege"): everything the product writes is created with
``PULSE_FILE_MODE`` (default 0600; folders 0700), including the files DuckDB and SQLite create
themselves (the warehouse's ``.wal``, the review store's ``-wal`` / ``-shm``: through the process
umask, so SQLite's files never get more than its own 0644, i.e. no group/other write); the key
file is always 0600 in a 0700 folder. Hypothesis over configured modes and file kinds in this process,
and the files of a real pipeline run on the vendored slice, in a subprocess started with a
permissive umask (022)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _dir_mode(mode: int) -> int:
    return mode | ((mode & 0o444) >> 2)


@contextmanager
def _process(mode: int, tmp: Path) -> Iterator[None]:
    """PULSE_FILE_MODE = ``mode`` and a private key file; the test process's umask and environment restored after."""
    saved = {k: os.environ.get(k) for k in ("PULSE_FILE_MODE", "PULSE_PRIVACY_KEY_FILE", "PULSE_PRIVACY_KEY")}
    old = os.umask(0o022)  # what a shell usually gives: the product must narrow it itself
    os.environ["PULSE_FILE_MODE"] = f"{mode:o}"
    os.environ["PULSE_PRIVACY_KEY_FILE"] = str(tmp / "keys" / "privacy.key")
    os.environ.pop("PULSE_PRIVACY_KEY", None)
    try:
        yield
    finally:
        os.umask(old)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _warehouse(tmp: Path) -> dict[Path, int]:
    """The warehouse, opened to write as the pipeline does: its file, its WAL while open, its folder."""
    from warehouse.db import open_warehouse

    wh = tmp / "data" / "warehouse.duckdb"
    with open_warehouse(wh) as con:
        con.execute("create table ops.t as select range as i from range(10)")
        assert Path(f"{wh}.wal").exists()  # the WAL DuckDB created by itself
        return {p: _mode(p) for p in (wh, Path(f"{wh}.wal"), wh.parent)}


def _snapshot(tmp: Path) -> dict[Path, int]:
    from warehouse.db import open_warehouse
    from warehouse.publish import publish_snapshot, restricted_path

    serving = tmp / "serving" / "serving.duckdb"
    with open_warehouse(tmp / "wh.duckdb") as con:
        publish_snapshot(con, serving)
    return {p: _mode(p) for p in (serving, restricted_path(serving), serving.parent)}


def _review_store(tmp: Path) -> dict[Path, int]:
    """The SQLite review store as the review app opens it (settings read at the edge, then the store)."""
    from moderation.review_store import ReviewStore
    from pulse.settings import load_settings

    db = tmp / "store" / "review.sqlite"
    db.parent.mkdir()
    store = ReviewStore.from_settings(load_settings(review_store_url=f"sqlite:///{db}"))
    try:
        store.create_schema()
        with store.engine.begin() as c:  # a write: SQLite creates -wal and -shm now
            c.exec_driver_sql("create table if not exists t (i integer)")
            c.exec_driver_sql("insert into t values (1)")
            files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
            assert all(f.exists() for f in files)
            return {f: _mode(f) for f in files}  # while open: SQLite removes -wal and -shm on close
    finally:
        store.dispose()


def _key_file(tmp: Path) -> dict[Path, int]:
    from warehouse.privacy_keys import load_ring

    load_ring()
    return {p: _mode(p) for p in (tmp / "keys" / "privacy.key", tmp / "keys")}


#: Each writes its kind of file as the product does and returns ``{path: mode}`` while the files exist.
KINDS: dict[str, Callable[[Path], dict[Path, int]]] = {
    "warehouse": _warehouse,
    "snapshot": _snapshot,
    "review_store": _review_store,
    "key_file": _key_file,
}
#: Owner read+write, group and others any of none / read / read+write.
MODES = st.builds(lambda g, o: 0o600 | g << 3 | o, st.sampled_from([0, 4, 6]), st.sampled_from([0, 4, 6]))


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=MODES, kind=st.sampled_from(sorted(KINDS)))
def test_every_kind_of_file_gets_the_configured_mode(
    mode: int, kind: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp(f"{kind}-{mode:o}")
    with _process(mode, tmp):
        modes = KINDS[kind](tmp)
    want_file, want_dir = (0o600, 0o700) if kind == "key_file" else (mode, _dir_mode(mode))
    if kind == "review_store":
        want_file &= 0o644  # SQLite creates its files 0644 (SQLITE_DEFAULT_FILE_PERMISSIONS): a umask only narrows
    got = {p.name: oct(m) for p, m in modes.items()}
    assert got == {p.name: oct(want_dir if p.is_dir() else want_file) for p in modes}


def test_a_widened_mode_is_refused_when_it_denies_the_owner(tmp_path: Path) -> None:
    from pulse.settings import ConfigError, load_settings

    with _process(0o600, tmp_path):
        os.environ["PULSE_FILE_MODE"] = "440"
        with pytest.raises(ConfigError, match="PULSE_FILE_MODE"):
            load_settings()


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_a_real_pipeline_run_writes_only_owner_files(mode: int, beer_dump: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PULSE_FILE_MODE": f"{mode:o}",
        "PULSE_WAREHOUSE": str(data / "warehouse.duckdb"),
        "PULSE_SERVING": str(data / "serving.duckdb"),
        "PULSE_REVIEW_STORE_URL": f"sqlite:///{data}/review.sqlite",
        "PULSE_DATA_DOCS_DIR": str(data / "data_docs"),
        "PULSE_ERASURE_LEDGER": str(data / "erasure_ledger.jsonl"),
        "PULSE_PRIVACY_KEY_FILE": str(tmp_path / "keys" / "privacy.key"),
        "PULSE_SCORER": "lexical",
        "PULSE_BACKUP_KEY": "k" * 40,
    }
    env.pop("PULSE_PRIVACY_KEY", None)
    code = "from pulse.cli import app; app()"
    for args in (
        ["run", "--source", "stackexchange", "--path", str(beer_dump)],
        ["review", "decisions", "--csv", str(data / "exports" / "decisions.csv")],
        ["privacy", "export-user", "--source", "stackexchange:beer", "--user-id", "4", "--out", str(data / "u4.json")],
        ["privacy", "forget-user", "--source", "stackexchange:beer", "--user-id", "73", "--yes"],
        ["backup", "create", "--to", str(data / "backups")],
    ):
        res = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=900, umask=0o022,
        )  # fmt: skip
        assert res.returncode == 0, (args, res.stdout[-2000:], res.stderr[-2000:])
    files = {p.relative_to(tmp_path): _mode(p) for p in tmp_path.rglob("*") if p.is_file()}
    dirs = {p.relative_to(tmp_path): _mode(p) for p in tmp_path.rglob("*") if p.is_dir()}
    names = {str(p) for p in files}
    assert {"data/warehouse.duckdb", "data/serving.duckdb", "data/serving_restricted.duckdb"} <= names
    assert {"data/review.sqlite", "data/exports/decisions.csv", "data/u4.json", "keys/privacy.key"} <= names
    assert any(n.startswith("data/data_docs/") for n in names) and any(n.startswith("data/backups/") for n in names)
    want = {p: (0o600 if p.parts[0] == "keys" else mode) for p in files}
    assert {str(p): oct(m) for p, m in files.items()} == {str(p): oct(m) for p, m in want.items()}
    want_dirs = {p: (0o700 if p.parts[0] == "keys" else _dir_mode(mode)) for p in dirs}
    assert {str(p): oct(m) for p, m in dirs.items()} == {str(p): oct(m) for p, m in want_dirs.items()}
