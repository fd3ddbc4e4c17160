"""Shared fixtures: the test data, and offline model settings.

Test data (see tests/data/README.md)
    ``beer_dump`` and ``toxicity_data`` are the slice vendored in ``tests/data`` (a few months of the
    beer.stackexchange dump, samples of the Davidson and Jigsaw sets): every clone has them.
    ``full_beer_dump`` and ``full_toxicity_data`` are the complete sets, for the few tests marked
    ``full_data`` (README/BENCHMARKS figures of the full dump, OLID and Kaggle-specific tests). They
    are looked up in ``$PULSE_SHARED_DATA``, else ``../shared/data``, else ``data/shared`` (where
    ``make data`` puts them). When they are missing, the ``full_data`` tests are deselected at
    collection and the run says how many and why; under ``CI=true`` they run and fail instead.
"""

from __future__ import annotations

import lzma
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]

# Airflow reads its configuration at import: give the test session its own home (metadata DB,
# logs) so tests never touch a developer's ./airflow_home, and load only this project's DAGs.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="pulse-airflow-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# Data Docs built by test runs go to a temporary folder, not the dashboards' static folder.
os.environ["PULSE_DATA_DOCS_DIR"] = tempfile.mkdtemp(prefix="pulse-data-docs-")
# Pipeline runs in tests ingest decisions from a throwaway review store, never the repo's data/.
os.environ["PULSE_REVIEW_STORE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='pulse-review-')}/review.sqlite"
# The privacy key (tombstones, pseudonyms) of test runs lives in a throwaway file, never the
# developer's ~/.config/pulse/privacy.key (a test warehouse keyed by it would bind that key).
os.environ["PULSE_PRIVACY_KEY_FILE"] = f"{tempfile.mkdtemp(prefix='pulse-keys-')}/privacy.key"
os.environ.pop("PULSE_PRIVACY_KEY", None)
os.environ.pop("PULSE_PSEUDONYM_KEY", None)

# No network in tests: a Hugging Face miss must fail in milliseconds, not retry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(msg: str) -> NoReturn:
    """Fail the test with ``msg`` under ``CI=true`` (or 1/yes), where nothing may be missing; skip it elsewhere."""
    if _ci():
        pytest.fail(msg)
    pytest.skip(msg)


VENDORED = REPO / "tests" / "data"
BEER_FILES = ("Posts.xml", "Comments.xml", "Votes.xml", "Users.xml", "Tags.xml")
# The files each full-data fixture needs, relative to the full data folder.
FULL_DATA: dict[str, tuple[str, ...]] = {
    "full_beer_dump": tuple(f"stackexchange/beer/{name}" for name in BEER_FILES),
    "full_toxicity_data": (
        "toxicity/davidson/labeled_data.csv",
        "toxicity/jigsaw_sample/test_examples.csv",
        "toxicity/olid_train/olid-training-v1.0.tsv",
        "toxicity/kaggle_insults/train.csv",
    ),
}


def full_data_dir() -> Path:
    """``$PULSE_SHARED_DATA`` if set, else the first of ``../shared/data`` and ``data/shared`` that exists."""
    if os.environ.get("PULSE_SHARED_DATA"):
        return Path(os.environ["PULSE_SHARED_DATA"]).resolve()
    candidates = (REPO.parent / "shared" / "data", REPO / "data" / "shared")
    return next((p.resolve() for p in candidates if p.is_dir()), candidates[0].resolve())


def _missing(fixtures: list[str]) -> list[str]:
    """Files the given full-data fixtures need that are absent (all fixtures' when ``fixtures`` is empty)."""
    root = full_data_dir()
    return [f for name in (fixtures or FULL_DATA) for f in FULL_DATA[name] if not (root / f).is_file()]


def _missing_message(missing: list[str]) -> str:
    looked = (
        f"PULSE_SHARED_DATA={full_data_dir()}" if os.environ.get("PULSE_SHARED_DATA") else "../shared/data, data/shared"
    )
    return f"full data not found ({looked}: no {missing[0]}); run `make data` or set PULSE_SHARED_DATA"


def _require_full(fixture: str, relative: str) -> Path:
    missing = _missing([fixture])
    if missing:  # only reached under CI=true: elsewhere such tests are deselected at collection
        pytest.fail(_missing_message(missing))
    return full_data_dir() / relative


@pytest.fixture(scope="session")
def beer_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vendored slice of the beer.stackexchange.com dump (Posts.xml, Comments.xml, Votes.xml, Users.xml,
    Tags.xml), decompressed once from ``tests/data/stackexchange/beer/*.xml.xz`` into a folder named ``beer``
    (source ``stackexchange:beer``). Its cut: tests/data/README.md."""
    folder = tmp_path_factory.mktemp("vendored") / "beer"
    folder.mkdir()
    for name in BEER_FILES:
        with lzma.open(VENDORED / "stackexchange" / "beer" / f"{name}.xz") as src, (folder / name).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return folder


@pytest.fixture(scope="session")
def toxicity_data() -> Path:
    """The vendored samples of the labelled toxicity sets: ``davidson/labeled_data.csv`` (600 tweets, 200 per
    class) and ``jigsaw_sample/test_examples.csv`` (all 101 rows). No OLID, no Kaggle insults."""
    return VENDORED / "toxicity"


@pytest.fixture(scope="session")
def full_beer_dump() -> Path:
    """The complete beer.stackexchange.com dump folder (tests marked ``full_data``)."""
    return _require_full("full_beer_dump", "stackexchange/beer")


@pytest.fixture(scope="session")
def full_toxicity_data() -> Path:
    """The complete toxicity sets: davidson, olid_train, kaggle_insults, jigsaw_sample (tests marked ``full_data``)."""
    return _require_full("full_toxicity_data", "toxicity")


_DESELECTED = pytest.StashKey[tuple[int, str]]()


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: count only what would have run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests using a full-data fixture ``full_data``; deselect those whose data is missing (not under CI)."""
    dropped: list[pytest.Item] = []
    message = ""
    for item in items:
        uses = [f for f in FULL_DATA if f in getattr(item, "fixturenames", ())]
        if uses:
            item.add_marker(pytest.mark.full_data)
        if item.get_closest_marker("full_data") and not _ci():
            missing = _missing(uses)
            if missing:
                dropped.append(item)
                message = message or _missing_message(missing)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [item for item in items if item not in gone]
        config.stash[_DESELECTED] = (len(dropped), message)


def pytest_report_header(config: pytest.Config) -> str:
    missing = _missing([])
    full = f"full data {full_data_dir()}" if not missing else _missing_message(missing)
    return f"test data: the vendored slice in tests/data; {full}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    if _DESELECTED in config.stash:
        n, message = config.stash[_DESELECTED]
        terminalreporter.write_line(f"{n} full-data test{'s' if n != 1 else ''} not run: {message}", yellow=True)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the real PostgreSQL server the tests use (``make test`` starts it via ``.ci/postgres``).

    The role may create databases; prefer :func:`postgres_db` for an isolated database.
    Fails under CI when ``PULSE_TEST_POSTGRES_URL`` is unset, skips elsewhere.
    """
    url = os.environ.get("PULSE_TEST_POSTGRES_URL", "")
    if not url:
        skip_or_fail("no PostgreSQL server: PULSE_TEST_POSTGRES_URL is unset (make test starts one with .ci/postgres)")
    return url


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system Chromium executable for the real-browser tests (``apt install chromium``; Playwright downloads none).

    Fails under CI when it is absent, skips elsewhere. The rest of the harness: tests/browser/harness.py.
    """
    path = shutil.which("chromium")
    if path is None:
        skip_or_fail("Chromium is not installed (apt install chromium); the real-browser test needs it")
    return path


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; its URL. Dropped afterwards."""
    import uuid

    import psycopg

    name = f"pulse_t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    base, _, _ = postgres_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')
