"""The layers hold (docs/ARCHITECTURE.md, "Layers"): import-linter's contracts in pyproject.toml.

``warehouse < moderation, transforms < pulse < dashboards, dags, benchmarks``, the warehouse
core importing no connector, and the pulse CLI without an import circle. ``lint-imports`` runs
from the virtualenv, as a developer would run it; imports inside functions and under
TYPE_CHECKING count.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("warehouse", "moderation", "transforms", "pulse", "dashboards", "benchmarks", "dags")
CONTRACTS = 3  # [[tool.importlinter.contracts]] in pyproject.toml


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_import_contracts_are_kept() -> None:
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert f"Contracts: {CONTRACTS} kept, 0 broken." in done.stdout, done.stdout[-8000:]


def test_a_function_level_import_of_a_higher_layer_breaks_the_contract(tmp_path: Path) -> None:
    """The same check on a copy of the sources where one warehouse function imports transforms."""
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "static", "results")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    load = tmp_path / "warehouse" / "load.py"
    load.write_text(load.read_text() + "\n\ndef _planted() -> None:\n    import transforms.runner  # noqa: F401\n")
    done = _lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout[-8000:] + done.stderr[-2000:]
    assert f"Contracts: {CONTRACTS - 1} kept, 1 broken." in done.stdout, done.stdout[-8000:]
    assert "warehouse is not allowed to import transforms" in done.stdout
    assert "warehouse.load -> transforms.runner" in done.stdout
