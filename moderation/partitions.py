"""Scoring fanned out: pending texts as Parquet partitions, scored anywhere, merged by one writer.

``plan → score partitions (mapped, on any worker) → merge``, the same in ``pulse run`` (in
process) and in the DAG (``plan_scoring → score_partition.expand() → merge_scores``):

* :func:`write_partitions` (the single writer, after reading the warehouse): the pending texts
  of :func:`moderation.scoring.pending_texts` (sorted by ``content_hash``) cut into Parquet files
  of at most ``max_rows`` rows, each named after its content (``part-<sha256 of its content
  hashes, 16 hex>.parquet``), so a retried plan writes the same files under the same names.
* :func:`score_partition` (no warehouse access): scores one partition with a scorer and writes
  ``<partition>.scores.<model>.parquet`` through a temporary file and an atomic ``os.replace``:
  a worker killed half-way leaves no result, a retried or duplicated partition rewrites the
  same rows, and a result already present is kept (the partition is not scored twice).
* :func:`merge_results` (the single writer, warehouse open): inserts every partition's scores
  into ``moderation.scores`` keyed by ``(content_hash, model_id)`` (``on conflict do nothing``:
  a text keeps the one score its model gave it, so duplicates change nothing).

The folder must be shared by every worker (a shared volume; on one machine, beside the
warehouse). The plan's manifest ``plan.json`` names the model and the partitions, so the merge
knows which results it needs and refuses to merge an incomplete set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from moderation.scorers import Scorer
from warehouse.canonical import LABELS
from warehouse.db import one

log = logging.getLogger(__name__)

#: Default texts per partition: ~5 min of a transformer on one thread (see BENCHMARKS.md
#: "cluster"), small enough that a lost worker costs little, large enough that the fixed cost
#: per partition (a task start and a model load) stays a small share.
PARTITION_ROWS = 10_000

MANIFEST = "plan.json"


@dataclass(frozen=True)
class Plan:
    """A scoring plan: the model and the partitions written for it (the manifest ``plan.json``)."""

    model_id: str
    model_version: str
    backend: str
    is_fallback: bool
    fallback_reason: str | None
    partitions: tuple[str, ...]
    texts: int
    truncated: int


def safe_name(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``_`` (file-name safe)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _atomic_write(folder: Path, name: str, write) -> Path:
    """Call ``write(tmp_path)`` on a temporary file in ``folder``, then ``os.replace`` it to ``name``."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder / name


def write_partitions(pending: pl.DataFrame, folder: Path, scorer: Scorer, *, max_rows: int = PARTITION_ROWS) -> Plan:
    """Write ``pending`` as partitions of at most ``max_rows`` rows into ``folder`` plus the manifest.

    Args:
        pending: frame ``content_hash, text, truncated`` (:func:`moderation.scoring.pending_texts`).
        folder: the run's shared scoring folder (created when missing).
        scorer: the model the plan is for (its provenance goes into the manifest).
        max_rows: texts per partition (>= 1).

    Returns:
        The :class:`Plan` (also written to ``folder/plan.json``).

    Raises:
        ValueError: ``max_rows`` < 1.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    folder.mkdir(parents=True, exist_ok=True)
    pending = pending.select("content_hash", "text", "truncated").sort("content_hash")
    names = []
    for start in range(0, pending.height, max_rows):
        part = pending.slice(start, max_rows)
        digest = hashlib.sha256("\n".join(part["content_hash"].to_list()).encode()).hexdigest()[:16]
        name = f"part-{digest}.parquet"
        if not (folder / name).exists():
            _atomic_write(folder, name, lambda tmp, part=part: part.write_parquet(tmp))
        names.append(name)
    plan = Plan(
        model_id=scorer.model_id,
        model_version=scorer.model_version,
        backend=scorer.backend,
        is_fallback=scorer.is_fallback,
        fallback_reason=scorer.fallback_reason,
        partitions=tuple(names),
        texts=pending.height,
        truncated=int(pending["truncated"].sum()) if pending.height else 0,
    )
    _atomic_write(folder, MANIFEST, lambda tmp: tmp.write_text(json.dumps(asdict(plan), indent=1)))
    log.info("planned %d texts in %d partitions of <= %d in %s", plan.texts, len(names), max_rows, folder)
    return plan


def read_plan(folder: Path) -> Plan:
    """The manifest of ``folder``.

    Raises:
        FileNotFoundError: no plan was written there.
    """
    data = json.loads((folder / MANIFEST).read_text())
    return Plan(**{**data, "partitions": tuple(data["partitions"])})


def result_name(partition: str, model_id: str) -> str:
    """File name of ``partition``'s scores by ``model_id``."""
    return f"{partition.removesuffix('.parquet')}.scores.{safe_name(model_id)}.parquet"


def score_partition(
    folder: Path, partition: str, scorer: Scorer, *, batch_size: int = 256
) -> dict[str, float | int | bool]:
    """Score one partition with ``scorer`` and write its result atomically (no warehouse access).

    Returns:
        ``{"rows": texts scored, "seconds": scoring time, "reused": True when the result existed}``.

    Raises:
        FileNotFoundError: the partition file is missing.
    """
    out = result_name(partition, scorer.model_id)
    if (folder / out).exists():
        return {"rows": pl.scan_parquet(folder / out).select(pl.len()).collect().item(), "seconds": 0.0, "reused": True}
    part = pl.read_parquet(folder / partition)
    t0 = time.perf_counter()
    texts = part["text"].to_list()
    chunks = [scorer.score(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    scores = pl.concat(chunks, how="vertical_relaxed") if chunks else pl.DataFrame()
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    result = pl.DataFrame(
        {
            "content_hash": part["content_hash"],
            "model_id": scorer.model_id,
            "model_version": scorer.model_version,
            "backend": scorer.backend,
            "is_fallback": scorer.is_fallback,
            "scored_at": pl.Series([scored_at] * part.height, dtype=pl.Datetime("us")),
            **{label: (scores[label] if label in scores.columns else None) for label in LABELS},
        },
        schema_overrides={label: pl.Float64 for label in LABELS},
    )
    _atomic_write(folder, out, lambda tmp: result.write_parquet(tmp))
    seconds = time.perf_counter() - t0
    log.info("scored partition %s: %d texts in %.2fs", partition, part.height, seconds)
    return {"rows": part.height, "seconds": seconds, "reused": False}


def merge_results(con: duckdb.DuckDBPyConnection, folder: Path, plan: Plan) -> int:
    """Insert every partition's scores into ``moderation.scores`` in one transaction.

    Returns:
        Rows inserted (texts already scored by the model are kept as they are).

    Raises:
        FileNotFoundError: a partition of the plan has no result (naming it): nothing is merged.
    """
    paths = [folder / result_name(p, plan.model_id) for p in plan.partitions]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} partitions have no scores yet: {', '.join(missing[:5])}"
        )
    if not paths:
        return 0
    before = one(con, "select count(*) from moderation.scores")[0]
    files = [str(p) for p in paths]
    con.execute("begin transaction")
    try:
        con.execute(
            "insert into moderation.scores by name select * from read_parquet(?) on conflict do nothing", [files]
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return one(con, "select count(*) from moderation.scores")[0] - before


def remove_folder(folder: Path) -> None:
    """Delete the run's partitions, results and manifest, then the folder (after a merge)."""
    for path in sorted(folder.glob("*")):
        if path.is_file():
            path.unlink()
    folder.rmdir()
