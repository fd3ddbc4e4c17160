"""``make lint`` as a test, so ``make test`` and CI run it: ruff's lint rules and its formatting check.

The rules, the line lengths and the deliberate exceptions are in pyproject.toml (``[tool.ruff]``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_check_finds_nothing() -> None:
    done = _ruff("check", "--output-format", "concise", ".")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def test_ruff_format_would_change_nothing() -> None:
    done = _ruff("format", "--check", ".")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


def test_ruff_reads_the_project_settings() -> None:
    """The checks above run with pyproject's settings, not ruff's defaults (a typo in a section name would drop them)."""
    done = _ruff("check", "--show-settings", "pulse/cli.py")
    assert done.returncode == 0, done.stderr
    settings = done.stdout
    assert f'Settings path: "{REPO / "pyproject.toml"}"' in settings
    for line in (
        "linter.line_length = 120",
        "linter.pycodestyle.max_line_length = 170",
        "blind-except (BLE001)",
        "blanket-noqa (PGH004)",
    ):
        assert line in settings
