"""SECURITY.md backs every claim with a test: each ``file::test`` it names exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_test_named_in_security_md_exists() -> None:
    text = (REPO / "SECURITY.md").read_text(encoding="utf-8")
    refs = re.findall(r"`((?:[\w/]+\.py)?)::(\w+)`", text)
    assert len(refs) >= 25
    missing, current = [], None
    for file, name in refs:
        current = file or current  # "::name" continues the file named last
        source = (REPO / "tests" / current).read_text(encoding="utf-8")
        if not re.search(rf"^def {name}\(", source, re.MULTILINE):
            missing.append(f"{current}::{name}")
    assert missing == []
