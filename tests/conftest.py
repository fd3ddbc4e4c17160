"""Shared fixtures: the real data in ../shared/data, and offline model settings."""

from __future__ import annotations

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

# No network in tests: a Hugging Face miss must fail in milliseconds, not retry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def skip_or_fail(msg: str) -> NoReturn:
    """Fail the test with ``msg`` under ``CI=true`` (or 1/yes), where nothing may be missing; skip it elsewhere."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(msg)
    pytest.skip(msg)


def _shared_data_dir() -> Path:
    return Path(os.environ.get("PULSE_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()


def require_shared(relative: str) -> Path:
    """Return ``../shared/data/<relative>``; fail under CI when it is missing, skip elsewhere."""
    path = _shared_data_dir() / relative
    if not path.exists():
        skip_or_fail(f"real test data missing: {path} (set PULSE_SHARED_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def beer_dump() -> Path:
    """The real beer.stackexchange.com data dump folder (Posts.xml, Comments.xml, ...)."""
    return require_shared("stackexchange/beer")


@pytest.fixture(scope="session")
def toxicity_data() -> Path:
    """The folder of human-labelled toxicity sets (davidson, olid_train, kaggle_insults, jigsaw_sample)."""
    return require_shared("toxicity")


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
