"""A warehouse + serving snapshot of the real beer dump (the vendored slice), built once and copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def beer_built(beer_dump: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The beer dump through the real pipeline (lexical scorer): a folder with warehouse + serving."""
    from pulse.settings import load_settings
    from pulse.steps import SourceSpec, run_pipeline

    folder = tmp_path_factory.mktemp("beer_built")
    settings = load_settings(warehouse=folder / "warehouse.duckdb", serving=folder / "serving.duckdb", scorer="lexical")
    run_pipeline(settings, SourceSpec(kind="stackexchange", path=beer_dump))
    return folder


@pytest.fixture
def beer_copy(beer_built: Path, tmp_path: Path) -> Path:
    """A private copy of the built warehouse and snapshot (tests may erase in it)."""
    for name in ("warehouse.duckdb", "serving.duckdb"):
        shutil.copy(beer_built / name, tmp_path / name)
    return tmp_path
