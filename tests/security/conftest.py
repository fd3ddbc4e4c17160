"""Fixtures for the hostile-input tests: the hostile dump (see hostile_dump.py) through the real pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # hostile_dump.py, shared with the tests here

from hostile_dump import write_hostile_dump


@pytest.fixture(scope="session")
def hostile_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hostile dump through the real pipeline: a folder with ``warehouse.duckdb`` and ``serving.duckdb``."""
    from pulse.settings import load_settings
    from pulse.steps import SourceSpec, run_pipeline

    folder = tmp_path_factory.mktemp("hostile")
    dump = write_hostile_dump(folder / "Hostile")
    settings = load_settings(warehouse=folder / "warehouse.duckdb", serving=folder / "serving.duckdb", scorer="lexical")
    run_pipeline(settings, SourceSpec(kind="stackexchange", path=dump))
    return folder
