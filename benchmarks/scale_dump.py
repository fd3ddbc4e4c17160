"""Scale a Stack Exchange data dump up N times, keeping its time patterns (for the scale benchmarks).

``scale_dump(source, out_root, factor)`` writes ``out_root/x<factor>/<source folder name>/``
holding ``Posts.xml``, ``Comments.xml``, ``Votes.xml``, ``Users.xml`` and ``Tags.xml`` in the
dump's own format (UTF-8 with BOM, one ``<row .../>`` per line, the source's line ends), made of
``factor`` *replicas* of the source community:

* **Ids.** Replica ``r`` (0-based) adds ``r * offset`` to every id of a kind, in the rows that
  carry it and in every reference to it: posts (``Posts.Id``, ``ParentId``,
  ``AcceptedAnswerId``, ``Comments.PostId``, ``Votes.PostId``), users (``Users.Id``,
  ``OwnerUserId``, ``LastEditorUserId``, ``Comments.UserId``, ``Votes.UserId``), comments,
  votes and accounts. ``offset`` is the largest id of that kind referenced anywhere in the
  source plus 2, so replicas never collide (the Community user ``-1`` included) and a
  reference to a deleted post stays dangling, exactly as in the source.
* **Time.** Replica ``r`` shifts every ``*Date`` attribute by ``w_r`` whole weeks
  (``w_r`` in {-1, 0, +1}) plus ``s_r`` seconds (0-59); votes, which the dump truncates to the
  day, move by the whole weeks only. Whole weeks keep every weekday x hour cell of the
  activity pattern (only items within ``s_r`` seconds of an hour's end move to the next hour);
  order within a replica is unchanged (answers stay after their question). The span widens by
  at most 7 days at each end. Replica 0 is the source, byte for byte.
* **Text.** Replica ``r >= 1`` appends `` [copy r]`` to comment texts and a paragraph
  ``[copy r]`` to post bodies, so every replica's texts are distinct (the pipeline scores each
  distinct text once: identical copies would make scoring look 100x cheaper than it is).
  Titles, tags and everything else are kept.

So a factor-N dump has exactly N times the source's rows per file, and a pipeline run over it
reads, loads, skips and quarantines exactly N times the source's counts (the smoke test checks
this). ``Tags.xml`` is copied; the optional files (``PostHistory.xml``, ``Badges.xml``,
``PostLinks.xml``) are not written. A ``manifest.json`` beside the files records the factor,
seed and row counts; an existing output with the same manifest is reused, not rewritten.

Command line::

    python -m benchmarks.scale_dump --factor 10 --out /tmp/pulse-bench/dumps [--source DUMP] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["ID_KINDS", "ScaledDump", "main", "scale_dump"]

GENERATOR_VERSION = 1
FILES: tuple[str, ...] = ("Posts.xml", "Comments.xml", "Votes.xml", "Users.xml")
COPIED: tuple[str, ...] = ("Tags.xml",)

#: (file, attribute) -> the id kind whose offset applies.
ID_KINDS: dict[tuple[str, str], str] = {
    ("Posts.xml", "Id"): "post",
    ("Posts.xml", "ParentId"): "post",
    ("Posts.xml", "AcceptedAnswerId"): "post",
    ("Posts.xml", "OwnerUserId"): "user",
    ("Posts.xml", "LastEditorUserId"): "user",
    ("Comments.xml", "Id"): "comment",
    ("Comments.xml", "PostId"): "post",
    ("Comments.xml", "UserId"): "user",
    ("Votes.xml", "Id"): "vote",
    ("Votes.xml", "PostId"): "post",
    ("Votes.xml", "UserId"): "user",
    ("Users.xml", "Id"): "user",
    ("Users.xml", "AccountId"): "account",
}
#: (file, attribute) whose text gets the per-replica marker, and how it is written (XML-escaped).
TEXT_SUFFIX: dict[tuple[str, str], str] = {
    ("Posts.xml", "Body"): "&lt;p&gt;[copy {r}]&lt;/p&gt;&#xA;",
    ("Comments.xml", "Text"): " [copy {r}]",
}

_ATTR = re.compile(r'([A-Za-z_][\w.-]*)="([^"]*)"')
_INT = re.compile(r"-?[0-9]+")
_DATE_FORMAT_LEN = len("2014-01-21T20:26:05.383")


@dataclass(frozen=True)
class ScaledDump:
    """A scaled dump on disk.

    Attributes:
        path: the dump folder (``.../x<factor>/<name>``), loadable by ``pulse run --source stackexchange``.
        factor: number of replicas of the source community.
        rows: rows written per file (``factor`` times the source's).
        bytes: total size of the written files.
        seconds: time spent generating (0.0 when an existing output was reused).
        reused: whether an existing output with the same manifest was reused.
    """

    path: Path
    factor: int
    rows: dict[str, int]
    bytes: int
    seconds: float
    reused: bool


# A line template: literal text and fields to rewrite per replica.
# field = (kind, payload): ("id", (offset_kind, int)), ("date", (datetime, is_day_precision)),
# ("text", (suffix_template, original_value))
_Seg = str | tuple[str, object]


def _split_row(file: str, line: str) -> tuple[list[_Seg], dict[str, int]]:
    """Cut one ``<row .../>`` line into literal pieces and rewritable fields; also return its ids."""
    segs: list[_Seg] = []
    ids: dict[str, int] = {}
    pos = 0
    for m in _ATTR.finditer(line):
        name, value = m.group(1), m.group(2)
        key = (file, name)
        field: tuple[str, object] | None = None
        if key in ID_KINDS and _INT.fullmatch(value):
            kind = ID_KINDS[key]
            field = ("id", (kind, int(value)))
            ids[kind] = max(ids.get(kind, -(10**18)), int(value))
        elif name.endswith("Date") and len(value) >= 19:
            try:
                dt = datetime.fromisoformat(value)
            except ValueError:
                dt = None
            if dt is not None:
                day = file == "Votes.xml"
                field = ("date", (dt, day, len(value) == _DATE_FORMAT_LEN))
        elif key in TEXT_SUFFIX:
            field = ("text", (TEXT_SUFFIX[key], value))
        if field is None:
            continue
        vstart, vend = m.span(2)
        segs.append(line[pos:vstart])
        segs.append(field)
        pos = vend
    segs.append(line[pos:])
    return segs, ids


def _render(segs: list[_Seg], r: int, offsets: dict[str, int], weeks: int, seconds: int) -> str:
    out: list[str] = []
    shift = timedelta(weeks=weeks, seconds=seconds)
    day_shift = timedelta(weeks=weeks)
    for seg in segs:
        if isinstance(seg, str):
            out.append(seg)
            continue
        kind, payload = seg
        if kind == "id":
            id_kind, value = payload  # type: ignore[misc]
            out.append(str(value + r * offsets[id_kind]))
        elif kind == "date":
            dt, day, millis = payload  # type: ignore[misc]
            moved = dt + (day_shift if day else shift)
            out.append(moved.isoformat(timespec="milliseconds") if millis else moved.isoformat())
        else:
            suffix, value = payload  # type: ignore[misc]
            out.append(value + suffix.format(r=r) if r else value)
    return "".join(out)


def _read_lines(path: Path) -> tuple[str, list[str], str]:
    """(head lines before the first row, row and other body lines, line end) of a dump file."""
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig")
    newline = "\r\n" if "\r\n" in text[:4096] else "\n"
    lines = text.split(newline)
    return newline, lines, ("\ufeff" if raw.startswith(b"\xef\xbb\xbf") else "")


def _replica_shifts(factor: int, seed: int) -> list[tuple[int, int]]:
    """(weeks, seconds) per replica; replica 0 is unshifted."""
    rng = random.Random(seed)
    shifts = [(0, 0)]
    for _ in range(1, factor):
        shifts.append((rng.choice((-1, 0, 1)), rng.randrange(60)))
    return shifts


def _manifest(source: Path, factor: int, seed: int) -> dict[str, object]:
    stats = {name: (source / name).stat().st_size for name in (*FILES, *COPIED)}
    return {
        "generator_version": GENERATOR_VERSION,
        "source": str(source.resolve()),
        "source_sizes": stats,
        "factor": factor,
        "seed": seed,
    }


def scale_dump(source: Path, out_root: Path, factor: int, *, seed: int = 0, force: bool = False) -> ScaledDump:
    """Write ``factor`` replicas of the dump ``source`` to ``out_root/x<factor>/<source.name>``.

    Args:
        source: a Stack Exchange dump folder (``Posts.xml``, ``Comments.xml``, ``Votes.xml``,
            ``Users.xml``, ``Tags.xml``; one row per line, as Stack Exchange publishes them).
        out_root: where scaled dumps live (a temporary folder, never the repository).
        factor: replicas, >= 1. Factor 1 writes a plain copy of the five files.
        seed: seed of the per-replica week shift and seconds jitter.
        force: rewrite even when a matching output exists.

    Returns:
        A :class:`ScaledDump` (its ``path`` keeps the source folder's name, so the pipeline's
        source name, ``stackexchange:<name>``, is the same at every factor).

    Raises:
        ValueError: ``factor < 1``.
        FileNotFoundError: a required file is missing from ``source``.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    source = Path(source)
    for name in (*FILES, *COPIED):
        if not (source / name).is_file():
            raise FileNotFoundError(f"{name} missing from Stack Exchange dump folder {source}")
    out = Path(out_root) / f"x{factor}" / source.name
    manifest = _manifest(source, factor, seed)
    manifest_file = out / "manifest.json"
    if not force and manifest_file.is_file():
        old = json.loads(manifest_file.read_text(encoding="utf-8"))
        if {k: old.get(k) for k in manifest} == manifest and all((out / n).is_file() for n in (*FILES, *COPIED)):
            return ScaledDump(out, factor, old["rows"], int(old["bytes"]), 0.0, True)

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    manifest_file.unlink(missing_ok=True)
    parsed: dict[str, tuple[str, str, list[str], list[list[_Seg] | str]]] = {}
    max_ids: dict[str, int] = {}
    for name in FILES:
        newline, lines, bom = _read_lines(source / name)
        body: list[list[_Seg] | str] = []
        head: list[str] = []
        for line in lines:
            if line.lstrip().startswith("<row"):
                segs, ids = _split_row(name, line)
                body.append(segs)
                for kind, value in ids.items():
                    max_ids[kind] = max(max_ids.get(kind, 0), value)
            elif not body:
                head.append(line)
            else:
                body.append(line)  # the closing root tag, trailing empty line
        parsed[name] = (newline, bom, head, body)
    offsets = {kind: value + 2 for kind, value in max_ids.items()}
    shifts = _replica_shifts(factor, seed)

    rows: dict[str, int] = {}
    for name, (newline, bom, head, body) in parsed.items():
        row_templates = [b for b in body if not isinstance(b, str)]
        tail = [b for b in body if isinstance(b, str)]
        tmp = out / (name + ".tmp")
        with tmp.open("w", encoding="utf-8", newline="") as f:
            f.write(bom + newline.join(head) + newline)
            for r, (weeks, seconds) in enumerate(shifts):
                f.write(newline.join(_render(segs, r, offsets, weeks, seconds) for segs in row_templates))
                f.write(newline)
            f.write(newline.join(tail))
        tmp.replace(out / name)
        rows[name] = len(row_templates) * factor
    for name in COPIED:
        shutil.copyfile(source / name, out / name)
    size = sum((out / n).stat().st_size for n in (*FILES, *COPIED))
    seconds = time.perf_counter() - t0
    manifest.update(rows=rows, bytes=size, offsets=offsets, seconds=round(seconds, 3))
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    return ScaledDump(out, factor, rows, size, seconds, False)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.scale_dump --factor N --out DIR [--source DUMP] [--seed S]``."""
    from benchmarks.common import beer_dump_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--factor", type=int, required=True, help="replicas of the source community (>= 1)")
    parser.add_argument("--out", type=Path, required=True, help="output root (a temporary folder)")
    parser.add_argument("--source", type=Path, default=None, help="dump folder (default: the shared beer dump)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rewrite an existing output")
    args = parser.parse_args(argv)
    dump = scale_dump(args.source or beer_dump_path(), args.out, args.factor, seed=args.seed, force=args.force)
    print(
        json.dumps(
            {
                "path": str(dump.path),
                "rows": dump.rows,
                "bytes": dump.bytes,
                "seconds": round(dump.seconds, 2),
                "reused": dump.reused,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
