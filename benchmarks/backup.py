"""Backup and restore: time and size at 1x / 10x / 100x of the beer dump; RPO / RTO of a daily schedule.

The warehouse of each size is the history the incremental benchmark builds
(:func:`benchmarks.pipeline.ensure_history`: the beer dump scaled by
:mod:`benchmarks.scale_dump`, loaded through the real pipeline). Each measurement copies it
(outside the timing) beside an empty SQLite review store and runs, in this process, with a
fixed benchmark key:

* ``create``: :func:`pulse.backup.create_backup` to a local folder (EXPORT DATABASE to Parquet
  zstd, AES-256-GCM, manifest with per-table checksums);
* ``verify``: :func:`pulse.backup.verify_backup` (re-hash every file, restore drill);
* ``restore``: :func:`pulse.backup.restore_backup` after deleting the warehouse (download,
  decrypt, import, compare with the manifest, republish the snapshot).

Compression ratio = warehouse file bytes / backup bytes. A daily schedule's recovery point
objective (RPO) is at most 24 h plus one ``create`` (what changed since the last backup started
is re-read from the sources, whose loads are idempotent); its recovery time objective (RTO) is one
``restore`` plus the pipeline run that catches up the lost interval (bench:incremental).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import BenchConfig, md_table, median

NAME = "backup"
COMMAND = "python -m benchmarks.run --only backup"
BENCH_KEY = "benchmark-key-not-secret-0123456789abcdef"


def _settings(folder: Path) -> Any:
    from pulse.settings import load_settings

    return load_settings(
        warehouse=folder / "data" / "warehouse.duckdb",
        serving=folder / "data" / "serving.duckdb",
        review_store_url=f"sqlite:///{folder / 'data' / 'review.sqlite'}",
        erasure_ledger=folder / "keys" / "erasure_ledger.jsonl",
        backup_key=BENCH_KEY,
    )


def measure(cfg: BenchConfig, warehouse: Path, repeats: int) -> dict[str, Any]:
    """Create, verify and restore a backup of a copy of ``warehouse``, ``repeats`` times each (medians).

    Returns:
        ``{"warehouse_bytes", "backup_bytes", "files", "tables", "rows", "ratio", "create_s",
        "verify_s", "restore_s", "runs"}``.
    """
    from moderation.review_store import ReviewStore
    from pulse.backup import create_backup, restore_backup, verify_backup

    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="backup-", dir=cfg.work_dir) as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "data").mkdir()
        shutil.copy(warehouse, tmp / "data" / "warehouse.duckdb")
        s = _settings(tmp)
        store = ReviewStore.from_settings(s)
        store.create_schema()
        store.dispose()
        create, verify, restore, result = [], [], [], None
        for i in range(repeats):
            dest = tmp / f"backups-{i}"
            result = create_backup(s, dest)
            create.append(result.manifest["elapsed_s"])
            verify.append(verify_backup(s, dest, result.backup_id).seconds)
            (tmp / "data" / "warehouse.duckdb").unlink()
            restore.append(restore_backup(s, dest, result.backup_id).seconds)
            if i < repeats - 1:
                shutil.rmtree(dest)
        m = result.manifest
        return {
            "warehouse_bytes": m["source_bytes"]["warehouse"],
            "backup_bytes": m["backup_bytes"],
            "files": len(m["files"]),
            "tables": len(m["tables"]),
            "rows": sum(t["rows"] for t in m["tables"].values()),
            "ratio": round(m["source_bytes"]["warehouse"] / m["backup_bytes"], 2),
            "create_s": median(create),
            "verify_s": median(verify),
            "restore_s": median(restore),
            "runs": repeats,
        }


def run(cfg: BenchConfig) -> dict[str, Any]:
    """Measure each size in ``cfg.sizes``; the RPO / RTO of a daily schedule from them.

    Returns:
        ``{"sizes": {factor: measure(...)}, "daily": {factor: {"rpo_max_h", "rto_s"}}}``.
    """
    from benchmarks.pipeline import ensure_history

    out: dict[str, Any] = {"sizes": {}, "daily": {}}
    for factor in cfg.sizes:
        history = ensure_history(cfg, factor)
        entry = measure(cfg, Path(history["warehouse"]), cfg.repeats)
        out["sizes"][str(factor)] = entry
        out["daily"][str(factor)] = {
            "rpo_max_h": round(24 + entry["create_s"] / 3600, 3),
            "rto_restore_s": entry["restore_s"],
        }
    return out


def render(result: dict[str, Any]) -> str:
    """The Markdown section for ``BENCHMARKS.md``."""
    mib = 1 << 20
    rows = [
        (
            f"{f}x",
            e["rows"],
            e["tables"],
            e["warehouse_bytes"] / mib,
            e["backup_bytes"] / mib,
            e["ratio"],
            e["create_s"],
            e["verify_s"],
            e["restore_s"],
            result["daily"][f]["rpo_max_h"],
        )
        for f, e in result["sizes"].items()
    ]
    return "\n".join(
        [
            f"## Backup and restore: {' / '.join(f'{f}x' for f in result['sizes'])} of the beer dump",
            "",
            f"Command: `{COMMAND}`. `pulse backup create` / `verify` (re-hash + restore drill) / `restore` (after deleting "
            "the warehouse) of the history warehouse of each size, to a local folder, medians of the runs. The backup is "
            "DuckDB `EXPORT DATABASE` (Parquet, zstd) + the SQLite review store, each file AES-256-GCM encrypted; ratio = "
            "warehouse file / backup bytes.",
            "",
            md_table(
                (
                    "size",
                    "rows",
                    "tables",
                    "warehouse MiB",
                    "backup MiB",
                    "ratio",
                    "create s",
                    "verify s",
                    "restore s",
                    "RPO max h (daily)",
                ),
                rows,
            ),
            "",
            "**Daily schedule** (`warehouse_backup` DAG after each pipeline run): recovery point at most 24 h + one create "
            "(the lost interval is re-read from the sources: loads are idempotent, so nothing is loaded twice); recovery "
            "time = restore s above (+ download time from an object store) + one pipeline run for the lost day "
            "(bench:incremental).",
        ]
    )
