"""Make the vendored test data in ``tests/data`` from the full shared data (deterministic).

Run from the repository root::

    .venv/bin/python tests/data/make_slice.py [--source DIR] [--out tests/data]

``--source`` is the full data folder (the layout of ``../shared/data``: ``stackexchange/beer``,
``toxicity/...``); by default ``$PULSE_SHARED_DATA``, else ``../shared/data``, else ``data/shared``
(what ``make data`` fetches). The same input always gives byte-identical output (xz preset 9,
no timestamps in the containers), so ``git diff`` shows when the cut changes.

The cut (documented in ``tests/data/README.md``)

* ``stackexchange/beer/*.xml.xz`` (CC BY-SA 3.0, Stack Exchange Inc.): the threads of the
  questions created in ``[CUT_START, CUT_END)`` plus the :data:`EXTRA_THREADS` that tests name,
  whole: the question, every answer to it, whatever their date, and every comment and vote on
  them, whatever their date. Plus the non-community posts (tag wikis and their excerpts) created
  in the cut, with their comments and votes; the votes created in the cut on posts that are
  absent from the full dump (deleted posts: they stay dangling, so the quarantine of dangling
  references stays exercised); the users any kept post, comment or vote names (``OwnerUserId``,
  ``LastEditorUserId``, ``UserId``) and the Community user ``-1``; and all of ``Tags.xml``.
  Rows are copied byte for byte (same BOM, declaration, CRLF line ends and row order);
  ``PostHistory.xml``, ``Badges.xml`` and ``PostLinks.xml`` are left out (nothing reads them).
* ``toxicity/davidson/labeled_data.csv`` (MIT, its LICENSE is copied): :data:`DAVIDSON_PER_CLASS`
  tweets of each ``class`` (0 hate speech, 1 offensive, 2 neither), drawn with
  ``random.Random(DAVIDSON_SEED)``, in the file's order, same columns.
* ``toxicity/jigsaw_sample/test_examples.csv`` (CC0): all 101 rows, copied, with its README.
* OLID (research use only) and the Kaggle insults set (licence unclear) are NOT vendored.
"""

from __future__ import annotations

import argparse
import csv
import io
import lzma
import os
import random
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "data"

CUT_START, CUT_END = "2014-01-21", "2014-05-01"  # CreationDate, ISO strings compare as dates
# Threads (question ids) kept whole although asked after the cut: the items that tests name.
EXTRA_THREADS: dict[str, str] = {
    "868": "favourited by user 73 (tests/privacy: erasure of his votes)",
    "877": "answer p943 (hidden in tests/moderation/test_moderation_queue.py)",
    "2133": "favourited by user 73 (tests/privacy)",
    "3212": "answer p3361 (Turkish names: routed for language)",
    "3257": "answer p3302 (flagged by the lexical model)",
    "3367": "comment c3388 (mentions user 73 by name: tests/privacy)",
    "3436": "comment c3423 on answer p3442 (flagged, then deleted in the queue test)",
    "4771": "comment c3674 (quotes German: routed for language)",
    "4816": "answer p4818 (flagged; author 4742, a repeat offender)",
    "4854": "answer p4856 (flagged; author 4742)",
    "6418": "the St-Germain question (hot content at the end of the data)",
}
BEER_FILES = ("Posts.xml", "Comments.xml", "Votes.xml", "Users.xml", "Tags.xml")
XZ_PRESET = 9
DAVIDSON_PER_CLASS = 200
DAVIDSON_SEED = 13
ROW = re.compile(rb"^\s*<row\s")


def default_source() -> Path:
    """``$PULSE_SHARED_DATA``, else ``../shared/data``, else ``data/shared`` (the first that exists)."""
    if os.environ.get("PULSE_SHARED_DATA"):
        return Path(os.environ["PULSE_SHARED_DATA"])
    for path in (REPO.parent / "shared" / "data", REPO / "data" / "shared"):
        if path.is_dir():
            return path
    return REPO.parent / "shared" / "data"


def _lines(path: Path) -> list[bytes]:
    """The file's physical lines, line ends kept (every dump row is one line)."""
    return path.read_bytes().splitlines(keepends=True)


def _rows(lines: list[bytes]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line index, attributes) of every ``<row .../>`` line."""
    for i, line in enumerate(lines):
        if ROW.match(line):
            yield i, dict(ET.fromstring(line.strip()).attrib)


def beer_slice(source: Path) -> dict[str, bytes]:
    """``{file name: the cut file's bytes}`` for :data:`BEER_FILES` (see the module docstring)."""
    lines = {name: _lines(source / name) for name in BEER_FILES}
    posts = dict(_rows(lines["Posts.xml"]))
    in_cut = lambda row: CUT_START <= row["CreationDate"] < CUT_END  # noqa: E731
    threads = {p["Id"] for p in posts.values() if p["PostTypeId"] == "1" and in_cut(p)} | set(EXTRA_THREADS)
    kept_posts = {
        i
        for i, p in posts.items()
        if (p["PostTypeId"] == "1" and p["Id"] in threads)
        or (p["PostTypeId"] == "2" and p.get("ParentId") in threads)
        or (p["PostTypeId"] not in ("1", "2") and in_cut(p))
    }
    post_ids = {posts[i]["Id"] for i in kept_posts}
    all_post_ids = {p["Id"] for p in posts.values()}
    comments = dict(_rows(lines["Comments.xml"]))
    kept_comments = {i for i, c in comments.items() if c.get("PostId") in post_ids}
    votes = dict(_rows(lines["Votes.xml"]))
    kept_votes = {
        i
        for i, v in votes.items()
        if v.get("PostId") in post_ids or (v.get("PostId") not in all_post_ids and in_cut(v))
    }
    named = (
        (posts, kept_posts, ("OwnerUserId", "LastEditorUserId")),
        (comments, kept_comments, ("UserId",)),
        (votes, kept_votes, ("UserId",)),
    )
    users = {"-1"} | {rows[i][k] for rows, kept, keys in named for i in kept for k in keys if k in rows[i]}
    kept_users = {i for i, u in _rows(lines["Users.xml"]) if u["Id"] in users}
    keep = {"Posts.xml": kept_posts, "Comments.xml": kept_comments, "Votes.xml": kept_votes, "Users.xml": kept_users}
    out = {}
    for name in BEER_FILES:
        rows_kept = keep.get(name)
        out[name] = b"".join(
            line for i, line in enumerate(lines[name]) if rows_kept is None or not ROW.match(line) or i in rows_kept
        )
    return out


def davidson_sample(path: Path) -> str:
    """:data:`DAVIDSON_PER_CLASS` rows per ``class``, seeded, in file order, as CSV text."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    label = header.index("class")
    rng = random.Random(DAVIDSON_SEED)
    picked: set[int] = set()
    for cls in sorted({r[label] for r in rows}):
        members = [i for i, r in enumerate(rows) if r[label] == cls]
        picked |= set(rng.sample(members, DAVIDSON_PER_CLASS))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows[i] for i in sorted(picked))
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=None, help="the full data folder (default: see above)")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write (default: tests/data)")
    args = parser.parse_args(argv)
    source = args.source or default_source()
    beer = source / "stackexchange" / "beer"
    if not (beer / "Posts.xml").is_file():
        print(f"full data not found at {source}: run `make data` or pass --source", file=sys.stderr)
        return 2
    out_beer = args.out / "stackexchange" / "beer"
    out_beer.mkdir(parents=True, exist_ok=True)
    for name, data in beer_slice(beer).items():
        (out_beer / f"{name}.xz").write_bytes(lzma.compress(data, preset=XZ_PRESET))
    tox, out_tox = source / "toxicity", args.out / "toxicity"
    (out_tox / "davidson").mkdir(parents=True, exist_ok=True)
    sample = davidson_sample(tox / "davidson" / "labeled_data.csv")
    (out_tox / "davidson" / "labeled_data.csv").write_text(sample, encoding="utf-8", newline="")
    shutil.copyfile(tox / "davidson" / "LICENSE", out_tox / "davidson" / "LICENSE")
    (out_tox / "jigsaw_sample").mkdir(parents=True, exist_ok=True)
    for name in ("test_examples.csv", "README.md"):
        shutil.copyfile(tox / "jigsaw_sample" / name, out_tox / "jigsaw_sample" / name)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file() and p.suffix in (".xz", ".csv"))
    print(f"wrote {args.out} ({total:,} bytes of data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
