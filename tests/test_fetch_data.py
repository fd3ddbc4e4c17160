"""scripts/fetch_data.py (``make data``): pinned checksums, mirrors, and what it says when nothing is reachable.

No test downloads anything: the "network" sources are a closed local port.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load():
    name = "pulse_scripts_fetch_data"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "fetch_data.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fetch = _load()
CLOSED = "http://127.0.0.1:9/file.csv"  # the discard port: connection refused at once


def test_vendored_copies_are_the_pinned_originals() -> None:
    """The Jigsaw sample and Davidson's LICENSE are vendored whole: their bytes are the pinned ones."""
    pins = {f.path: f for f in fetch.FILES}
    for path in (
        "toxicity/jigsaw_sample/test_examples.csv",
        "toxicity/jigsaw_sample/README.md",
        "toxicity/davidson/LICENSE",
    ):
        vendored = REPO / "tests" / "data" / path
        assert fetch.sha256(vendored) == pins[path].sha256 and vendored.stat().st_size == pins[path].size, path
    assert len(pins) == 11 and sum(f.url is None for f in fetch.FILES) == 1  # OLID: no public URL pinned


def test_mirror_copy_is_verified_and_a_wrong_mirror_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = b"text,label\nhello,0\n"
    item = fetch.DataFile("toxicity/x/a.csv", hashlib.sha256(data).hexdigest(), len(data), CLOSED)
    good, bad, out = tmp_path / "good", tmp_path / "bad", tmp_path / "out"
    for mirror, content in ((good, data), (bad, data + b"tampered\n")):
        (mirror / "toxicity" / "x").mkdir(parents=True)
        (mirror / "toxicity" / "x" / "a.csv").write_bytes(content)

    args = ["--out", str(out), "--mirror", str(bad), "--mirror", str(good)]
    assert fetch.main(args, files=(item,)) == 0
    assert (out / "toxicity" / "x" / "a.csv").read_bytes() == data
    first = capsys.readouterr().out
    assert f"ok       toxicity/x/a.csv (copied from {good})" in first and "all 1 files" in first
    assert fetch.main(args, files=(item,)) == 0
    assert "ok       toxicity/x/a.csv (already there)" in capsys.readouterr().out

    (out / "toxicity" / "x" / "a.csv").write_bytes(b"corrupt")  # a damaged local copy is replaced from the mirror
    assert fetch.main(args, files=(item,)) == 0
    assert (out / "toxicity" / "x" / "a.csv").read_bytes() == data


def test_nothing_reachable_says_so_per_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = b"x"
    files = (
        fetch.DataFile("stackexchange/beer/Posts.xml", hashlib.sha256(data).hexdigest(), 1, CLOSED),
        fetch.DataFile(
            "toxicity/olid_train/olid.tsv", hashlib.sha256(data).hexdigest(), 1, None, "no pinned public URL"
        ),
    )
    wrong = tmp_path / "mirror" / "stackexchange" / "beer"
    wrong.mkdir(parents=True)
    (wrong / "Posts.xml").write_bytes(b"y")
    code = fetch.main(
        ["--out", str(tmp_path / "out"), "--mirror", str(tmp_path / "mirror"), "--timeout", "5"], files=files
    )
    out, err = capsys.readouterr()
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("MISSING  stackexchange/beer/Posts.xml: mirror ")
    assert "checksum mismatch" in lines[0] and f"{CLOSED}: unreachable (" in lines[0]
    assert lines[1] == (
        f"MISSING  toxicity/olid_train/olid.tsv: mirror {tmp_path / 'mirror' / 'toxicity/olid_train/olid.tsv'}: "
        "not there; no pinned public URL"
    )
    assert "2 of 2 files could not be fetched" in err and "make data MIRROR=DIR" in err
    assert not (tmp_path / "out" / "stackexchange" / "beer" / "Posts.xml").exists()  # wrong bytes are never installed
    assert fetch.main(["--out", str(tmp_path / "out"), "--offline"], files=files[:1]) == 1
    assert f"{CLOSED}: not tried (--offline)" in capsys.readouterr().out
