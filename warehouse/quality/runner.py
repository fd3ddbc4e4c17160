"""Running expectation suites: Great Expectations 1.x execution, persisted results, Data Docs.

:func:`validate` runs a suite (a sequence of :class:`~warehouse.quality.suites.Check`, declared
in :mod:`warehouse.quality.suites`) with GE over polars frames (converted to pandas) and returns
a :class:`SuiteResult`; :func:`persist` writes it to ``quality.validation_results``;
:meth:`SuiteResult.raise_for_critical` turns critical failures into a :class:`QualityGateError`
that stops the pipeline. With ``docs_dir``, :func:`validate` also builds GE's Data Docs.

Why pandas and an ephemeral context (docs/ARCHITECTURE.md, "Known pitfalls of the stack"): GE's SQL datasource over
DuckDB fails with ``MetricResolutionError``, so we validate in-memory frames and keep the
results in our own warehouse table rather than GE's stores. Importing GE takes seconds, so it
is imported inside :func:`validate` only.

Missing and empty tables: a table named by a check but absent from ``frames`` fails every check
on it, each marked critical (absent data is never silently accepted), with ``unexpected_count``
and ``element_count`` None and details ``table absent from frames``. A table with zero rows is
validated as usual: column expectations pass vacuously (nothing is unexpected), so an interval
without, say, new users is fine; pass an empty frame with the canonical columns for it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from warehouse.quality.suites import NOW, Check

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one :class:`Check`.

    Attributes:
        table, expectation, column: the check's :attr:`Check.key`.
        success: the expectation held for every row (or the table-level condition held).
        critical: copied from the check (forced True when the table was absent).
        unexpected_count: rows that broke it; None for table-level expectations, errors and
            absent tables.
        element_count: rows in the validated frame (None when the table was absent).
        details: compact JSON: description, resolved kwargs, a sample of unexpected values,
            the observed value or the error message.
        description: the check's description.
        params: the check's :meth:`Check.params` text (for messages).
        error: the exception message when GE could not evaluate the check (e.g. a missing
            column), or ``table absent from frames``; None otherwise.
    """

    table: str
    expectation: str
    column: str
    success: bool
    critical: bool
    unexpected_count: int | None
    element_count: int | None
    details: str
    description: str = ""
    target: str = ""
    params: str = ""
    error: str | None = None

    def summary(self) -> str:
        """One line: ``staging.content.created_at ExpectColumnValuesToBeBetween (max_value=now): 3 of 3,849 rows``."""
        head = f"{self.target or self.table} {self.expectation}"
        if self.params:
            head += f" {self.params}"
        if self.error is not None:
            tail = self.error
        elif self.unexpected_count is not None:
            total = "?" if self.element_count is None else f"{self.element_count:,}"
            tail = f"{self.unexpected_count:,} of {total} rows"
        else:
            observed = json.loads(self.details).get("observed_value")
            tail = f"observed {observed!r}"
        return f"{head}: {tail}"


ABSENT = "table absent from frames"
"""The ``error`` of results whose table was not among the frames."""


class QualityGateError(RuntimeError):
    """A critical expectation failed; the message lists each failure with its row counts."""


RESULTS_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "suite": pl.String(),
    "expectation": pl.String(),
    "column_name": pl.String(),
    "table_name": pl.String(),
    "success": pl.Boolean(),
    "critical": pl.Boolean(),
    "unexpected_count": pl.Int64(),
    "element_count": pl.Int64(),
    "details": pl.String(),
    "validated_at": pl.Datetime("us"),
}


@dataclass
class SuiteResult:
    """All expectation results of one :func:`validate` call.

    Attributes:
        suite: the suite name (``staging``, ``marts`` ...), stored with every row.
        run_id: the pipeline run.
        validated_at: the ``now`` of the call, naive UTC.
        results: one per check, in the suite's order.
        elapsed_s: wall time of the validation in seconds (GE import excluded).
    """

    suite: str
    run_id: str
    validated_at: datetime
    results: list[ExpectationResult]
    elapsed_s: float = 0.0

    @property
    def passed(self) -> list[ExpectationResult]:
        """Results whose expectation held."""
        return [r for r in self.results if r.success]

    @property
    def failed(self) -> list[ExpectationResult]:
        """Results whose expectation failed (critical or not)."""
        return [r for r in self.results if not r.success]

    @property
    def critical_failures(self) -> list[ExpectationResult]:
        """Failed results of critical checks: any of these blocks the pipeline."""
        return [r for r in self.results if not r.success and r.critical]

    @property
    def success(self) -> bool:
        """True when every expectation held."""
        return all(r.success for r in self.results)

    def raise_for_critical(self) -> None:
        """Raise :class:`QualityGateError` when a critical expectation failed.

        The message has one line per failure, e.g.
        ``critical expectation failed: staging.content.created_at ExpectColumnValuesToBeBetween
        (max_value=now): 3 of 3,849 rows``, and one line per absent table, e.g.
        ``critical: table staging.users absent from frames: 5 checks not run``.
        """
        failures = self.critical_failures
        if not failures:
            return
        lines: list[str] = []
        absent: dict[str, int] = {}
        for r in failures:
            if r.error == ABSENT:
                absent[r.table] = absent.get(r.table, 0) + 1
            else:
                lines.append(f"critical expectation failed: {r.summary()}")
        lines += [f"critical: table {t} absent from frames: {n} checks not run" for t, n in absent.items()]
        raise QualityGateError("\n".join(lines))

    def to_frame(self) -> pl.DataFrame:
        """The results as rows of ``quality.validation_results`` (see :data:`RESULTS_SCHEMA`)."""
        return pl.DataFrame(
            [
                {
                    "run_id": self.run_id,
                    "suite": self.suite,
                    "expectation": r.expectation,
                    "column_name": r.column,
                    "table_name": r.table,
                    "success": r.success,
                    "critical": r.critical,
                    "unexpected_count": r.unexpected_count,
                    "element_count": r.element_count,
                    "details": r.details,
                    "validated_at": self.validated_at,
                }
                for r in self.results
            ],
            schema=RESULTS_SCHEMA,
        )


# --------------------------------------------------------------------------------------------
# Helpers


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts


_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)


def _epoch_us(value: Any) -> Any:
    """A datetime (naive = UTC) as integer microseconds since the epoch; other values unchanged."""
    if isinstance(value, datetime):
        return (_naive_utc(value) - _EPOCH) // _US
    return value


def _from_epoch_us(value: Any) -> Any:
    """Inverse of :func:`_epoch_us` for sample values in details (NaN and None stay None)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return (_EPOCH + timedelta(microseconds=int(value))).isoformat()
    return value


def _resolve(kwargs: Mapping[str, Any], now: datetime, epoch: bool) -> dict[str, Any]:
    """Replace :data:`NOW` by ``now``; with ``epoch``, datetimes become epoch microseconds."""
    out: dict[str, Any] = {}
    for name, value in kwargs.items():
        value = now if value is NOW else value
        if epoch:
            value = (
                [_epoch_us(v) for v in value] if isinstance(value, (list, tuple, set, frozenset)) else _epoch_us(value)
            )
        out[name] = value
    return out


def _jsonable(value: Any) -> Any:
    """Make GE result values JSON-safe (NaN/NaT to None, timestamps and numpy scalars to text)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    text = str(value)
    return None if text in {"NaT", "nan", "<NA>"} else text


def _details(check: Check, kwargs: Mapping[str, Any], **extra: Any) -> str:
    payload: dict[str, Any] = {"description": check.description, "kwargs": _jsonable(dict(kwargs))}
    payload.update({k: _jsonable(v) for k, v in extra.items() if v is not None})
    return json.dumps(payload, sort_keys=True, default=str)


def _check_suite(checks: Sequence[Check]) -> None:
    seen: set[tuple[str, str, str]] = set()
    for c in checks:
        if c.key in seen:
            raise ValueError(f"two checks share (table, expectation, column) {c.key}; results would collide")
        seen.add(c.key)
        if "mostly" in c.kwargs:
            raise ValueError(f"{c.target()} {c.expectation}: 'mostly' is not allowed, a check holds for all rows")


# --------------------------------------------------------------------------------------------
# Validation


def _store_for_docs(context: Any, suite_name: str, run_id: str, now: datetime, table: str, validation: Any) -> None:
    """Put one validation result in the context's (in-memory) store, where Data Docs read it."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
        run_id=RunIdentifier(run_name=run_id, run_time=now.replace(tzinfo=UTC)),
        batch_identifier=table,
    )
    context.validation_results_store.set(key, validation)


def validate(
    frames: Mapping[str, pl.DataFrame],
    checks: Sequence[Check],
    *,
    suite: str,
    run_id: str,
    now: datetime,
    docs_dir: Path | None = None,
) -> SuiteResult:
    """Run ``checks`` over ``frames`` with Great Expectations and return every result.

    With ``docs_dir``, GE's Data Docs for this call are (re)built at ``docs_dir/<suite>/``
    (``index.html`` lists the run's validation results, one page per table); ``docs_dir`` is
    created owner-only (``warehouse.files.private_dir``) if missing.

    One ephemeral GE context per call, one pandas datasource, and per table one dataframe
    asset, one expectation suite and one ``ValidationDefinition`` run. Only the columns the
    checks read are converted to pandas; datetime columns are handed to GE as epoch
    microseconds (and ``NOW``/datetime bounds converted alike) because GE's pandas
    ``ExpectColumnValuesToBeBetween`` is per-element Python for anything but ``datetime64[ns]``;
    details show those values as ISO timestamps again. Progress bars are switched off through
    the context config. GE catches per-expectation errors (e.g. a missing column): such a
    check fails with the error in ``details``. Not thread-safe: GE keeps the current context
    in a process-wide global.

    Args:
        frames: polars frames keyed by table name (``staging.content`` ...).
        checks: the suite, e.g. :data:`STAGING_SUITE`.
        suite: the suite's name, stored with every result row.
        run_id: the pipeline run.
        now: the reference time for :data:`NOW` bounds and ``validated_at``; naive UTC, or
            aware (converted to naive UTC).

    Returns:
        A :class:`SuiteResult` with one result per check, in ``checks`` order. A table absent
        from ``frames`` fails all its checks, marked critical.

    Raises:
        ValueError: two checks share (table, expectation, column), a check uses ``mostly``, or
            an expectation name is not a GE expectation class.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    _check_suite(checks)
    unknown = sorted({c.expectation for c in checks if not hasattr(gx.expectations, c.expectation)})
    if unknown:
        raise ValueError(f"not Great Expectations expectation classes: {unknown}")

    started = time.perf_counter()
    now = _naive_utc(now)
    context = gx.get_context(
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        ),
        mode="ephemeral",
    )
    datasource = context.data_sources.add_pandas(name="community_pulse")
    if docs_dir is not None:
        from warehouse.files import private_dir

        docs_dir = Path(docs_dir).resolve()  # GE's filesystem store refuses a relative base_directory
        private_dir(docs_dir)  # owner-only when created here: Data Docs may hold sample member data
        context.add_data_docs_site(
            site_name="pulse",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(Path(docs_dir) / suite),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )

    by_table: dict[str, list[int]] = {}
    for i, c in enumerate(checks):
        by_table.setdefault(c.table, []).append(i)

    results: dict[int, ExpectationResult] = {}
    for table, indexes in by_table.items():
        frame = frames.get(table)
        if frame is None:
            for i in indexes:
                c = checks[i]
                msg = ABSENT
                results[i] = ExpectationResult(
                    c.table, c.expectation, c.column, False, True, None, None,
                    _details(c, c.kwargs, error=msg), c.description, c.target(), c.params(), msg,
                )  # fmt: skip
            continue

        if all(checks[i].columns for i in indexes):
            # Convert only the columns the checks read (bodies and tags are costly in pandas).
            needed = dict.fromkeys(col for i in indexes for col in checks[i].columns)
            frame_in = frame.select([col for col in needed if col in frame.columns])
        else:  # a table-level expectation (row count, column set) needs the whole frame
            frame_in = frame
        # GE compares datetime64[us] columns one Python object at a time (its vectorised path
        # is for [ns] only): ~5 s per million values. Validate datetimes as epoch microseconds
        # (exact, no [ns] range limit) and convert the bounds the same way.
        epoch_cols = {c for c, t in frame_in.schema.items() if isinstance(t, pl.Datetime)}
        pdf = frame_in.with_columns(pl.col(c).dt.epoch("us") for c in epoch_cols).to_pandas()

        asset = datasource.add_dataframe_asset(name=table)
        batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        gx_suite = context.suites.add(gx.ExpectationSuite(name=f"{suite}:{table}"))
        resolved: dict[int, dict[str, Any]] = {}
        epoch_checks: set[int] = set()
        for i in indexes:
            c = checks[i]
            epoch = bool(c.columns) and set(c.columns) <= epoch_cols
            if epoch:
                epoch_checks.add(i)
            resolved[i] = _resolve(c.kwargs, now, epoch=False)
            gx_kwargs = _resolve(c.kwargs, now, epoch=epoch)
            gx_suite.add_expectation(getattr(gx.expectations, c.expectation)(**gx_kwargs, meta={"check_index": i}))

        # A ValidationDefinition loads the batch once (batch.validate() loads it twice, and GE
        # fingerprints every load by hashing the whole frame).
        definition = gx.ValidationDefinition(name=f"{suite}:{table}", data=batch_definition, suite=gx_suite)
        validation = definition.run(
            batch_parameters={"dataframe": pdf},
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
        )
        if docs_dir is not None:
            _store_for_docs(context, gx_suite.name, run_id, now, table, validation)
        for r in validation.results:
            i = int(r.expectation_config.meta["check_index"])
            c = checks[i]
            res = dict(r.result or {})
            exc = r.exception_info or {}
            error = None
            # exception_info is either {raised_exception, exception_message, ...} or keyed by metric id.
            infos = [exc] if "raised_exception" in exc else [v for v in exc.values() if isinstance(v, Mapping)]
            for info in infos:
                if info.get("raised_exception"):
                    error = f"error: {info.get('exception_message')}"
                    break
            unexpected = res.get("unexpected_count")
            element = res.get("element_count", frame.height)
            sample = res.get("partial_unexpected_counts") or None
            if sample and i in epoch_checks:
                sample = [{**s, "value": _from_epoch_us(s.get("value"))} for s in sample]
            results[i] = ExpectationResult(
                table=c.table,
                expectation=c.expectation,
                column=c.column,
                success=bool(r.success) and error is None,
                critical=c.critical,
                unexpected_count=None if unexpected is None or error else int(unexpected),
                element_count=None if element is None else int(element),
                details=_details(
                    c,
                    resolved[i],
                    partial_unexpected_counts=sample,
                    unexpected_percent=res.get("unexpected_percent"),
                    observed_value=res.get("observed_value"),
                    error=error,
                ),
                description=c.description,
                target=c.target(),
                params=c.params(),
                error=error,
            )

    if docs_dir is not None:
        context.build_data_docs(site_names=["pulse"])
    out = SuiteResult(
        suite=suite,
        run_id=run_id,
        validated_at=now,
        results=[results[i] for i in range(len(checks))],
        elapsed_s=time.perf_counter() - started,
    )
    failed = out.failed
    log.info(
        "suite %s run %s: %d expectations, %d failed (%d critical) in %.2fs",
        suite, run_id, len(out.results), len(failed), len(out.critical_failures), out.elapsed_s,
    )  # fmt: skip
    for r in failed:
        if not r.critical:
            log.warning("suite %s run %s: expectation failed (non-critical): %s", suite, run_id, r.summary())
    return out


def persist(con: duckdb.DuckDBPyConnection, result: SuiteResult) -> int:
    """Write ``result`` to ``quality.validation_results``; return the number of rows written.

    Idempotent per (run_id, suite): the run's earlier rows for the suite are deleted and the new
    ones inserted in one transaction (so the connection must not be inside a transaction).
    """
    df = result.to_frame()
    view = "_quality_results_df"
    con.execute("begin transaction")
    try:
        con.execute(
            "delete from quality.validation_results where run_id = ? and suite = ?", [result.run_id, result.suite]
        )
        con.register(view, df)
        try:
            con.execute(f"insert into quality.validation_results by name select * from {view}")
        finally:
            con.unregister(view)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return df.height
