"""Glue between Airflow task contexts and :mod:`pulse.steps` (kept out of ``dags/``).

The DAG file stays thin: each task calls :func:`run_step` with its step name. The data
interval comes from the DAG run: params ``since``/``until`` win when given; scheduled and
backfill runs load exactly their data interval; a manual run without params loads the
source's whole history.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pulse.settings import load_settings
from pulse.steps import SourceSpec, utcnow

INTERVAL_RUN_TYPES = frozenset({"scheduled", "backfill"})


def _naive_utc(value: Any) -> datetime | None:
    """An aware datetime / pendulum / ISO string as naive UTC; '' and None give None."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        from datetime import UTC

        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def resolve_window(
    params: dict[str, Any], run_type: str, interval_start: Any, interval_end: Any
) -> tuple[datetime | None, datetime | None]:
    """The data interval ``[since, until)`` (naive UTC) a DAG run loads; see the module docstring."""
    since, until = _naive_utc(params.get("since")), _naive_utc(params.get("until"))
    if since or until:
        return since, until
    if str(run_type).split(".")[-1].lower() in INTERVAL_RUN_TYPES:
        return _naive_utc(interval_start), _naive_utc(interval_end)
    return None, None


def platform_dsn(settings: Any) -> Any:
    """The platform database's DSN (a ``SecretStr``): ``PULSE_POSTGRES_DSN`` if set, else the Airflow
    connection ``settings.postgres_conn_id`` (default ``pulse_platform``; conn type postgres: host,
    port, login, password, schema = database), so the DSN never lives in the repository.

    Raises:
        ValueError: when neither is configured (names both fixes).
    """
    from urllib.parse import quote

    from pydantic import SecretStr

    if settings.postgres_dsn is not None and settings.postgres_dsn.get_secret_value():
        return settings.postgres_dsn
    from airflow.sdk import Connection

    try:
        conn = Connection.get(settings.postgres_conn_id)
    except Exception as exc:  # noqa: BLE001 - AirflowNotFoundException and friends
        raise ValueError(
            f"source=postgres needs a DSN: set PULSE_POSTGRES_DSN or create the Airflow connection "
            f"{settings.postgres_conn_id!r} (PULSE_POSTGRES_CONN_ID), e.g. `airflow connections add "
            f"{settings.postgres_conn_id} --conn-uri postgresql://USER:PW@HOST:5432/DB` ({type(exc).__name__})"
        ) from None
    auth = quote(conn.login or "", safe="") + (":" + quote(conn.password, safe="") if conn.password else "")
    host = f"{conn.host or 'localhost'}:{conn.port or 5432}"
    return SecretStr(f"postgresql://{auth + '@' if auth else ''}{host}/{conn.schema or 'postgres'}")


def run_step(step: str) -> dict[str, Any]:
    """Run pipeline ``step`` for the current Airflow task; return the step's summary (an XCom)."""
    from airflow.sdk import get_current_context

    from pulse import steps

    ctx = get_current_context()
    params = dict(ctx.get("params") or {})
    overrides = {k: params.get(k) or None for k in ("scorer",)}
    settings = load_settings(**overrides)
    run_id = f"airflow__{ctx['run_id']}"
    if step == "extract":
        dag_run = ctx["dag_run"]
        since, until = resolve_window(
            params, getattr(dag_run, "run_type", "manual"), ctx.get("data_interval_start"), ctx.get("data_interval_end")
        )
        if until is not None and until > utcnow():
            until = utcnow()
        spec = SourceSpec(
            kind=params.get("source") or "demo",
            path=Path(params["path"]) if params.get("path") else None,
            timezone=params.get("timezone") or None,
            source_name=params.get("source_name") or None,
        )
        if spec.kind == "postgres":
            from dataclasses import replace

            spec = replace(
                spec,
                dsn=platform_dsn(settings),
                preset=params.get("preset") or None,
                mapping=Path(params["mapping"]) if params.get("mapping") else None,
                postgres_options=steps.postgres_options(settings),
            )
        return steps.extract(settings, run_id, spec, since, until, trigger="airflow")
    fn = getattr(steps, step)
    return fn(settings, run_id)
