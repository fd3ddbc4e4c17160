"""The publish step updates the previous snapshot after a run that loaded a batch, and writes it
from scratch after a retention redaction, a privacy request or a step run on its own (issue #17):
a row deleted from a copied file may leave its bytes in the file."""

from __future__ import annotations

import json
from datetime import datetime

from pulse import steps
from pulse.settings import load_settings
from warehouse.db import open_warehouse


def _run(settings, run_id: str, *, retention_redacted: int | None) -> dict:
    with open_warehouse(settings.warehouse) as con:
        con.execute(
            "insert into ops.runs (run_id, source, started_at, status) values (?, 'demo', ?, 'running')",
            [run_id, steps.utcnow()],
        )
        if retention_redacted is not None:
            con.execute(
                "insert into ops.step_log values (?, 'load', ?, 0.1, 0, ?)",
                [run_id, datetime(2024, 1, 1), json.dumps({"retention_redacted": retention_redacted})],
            )
    return steps.publish(settings, run_id)


def test_incremental_only_after_a_loaded_batch_without_redaction_or_privacy_request(tmp_path) -> None:
    settings = load_settings(warehouse=tmp_path / "wh.duckdb", serving=tmp_path / "serving.duckdb")
    assert _run(settings, "r1", retention_redacted=0)["incremental"] is True
    assert _run(settings, "r2", retention_redacted=3)["incremental"] is False  # bodies redacted: from scratch
    assert _run(settings, "r3", retention_redacted=None)["incremental"] is False  # publish run on its own
    with open_warehouse(settings.warehouse) as con:
        con.execute(
            "insert into ops.privacy_requests (request_id, kind, source, requested_at, status) "
            "values ('p1', 'forget', 'demo', ?, 'done')",
            [steps.utcnow()],
        )
    assert _run(settings, "r4", retention_redacted=0)["incremental"] is False  # an erasure since the last run
    assert _run(settings, "r5", retention_redacted=0)["incremental"] is True  # r4 succeeded after it
    assert (tmp_path / "serving.duckdb").is_file()
