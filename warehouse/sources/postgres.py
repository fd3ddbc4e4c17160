"""PostgreSQL source: pull a live platform's database (a read replica) into the canonical model.

Most community platforms (Discourse, Mastodon, Lemmy) keep their data in PostgreSQL. This
connector reads such a database incrementally, by watermark, through a **mapping file**
(TOML) that says, per query, which canonical stream it feeds and how. The built-in
``discourse`` preset (``warehouse/sources/presets/discourse.toml``) covers Discourse's schema.

Mapping file format
    Top level: ``source`` (optional; default ``<preset or file stem>:<database name>``, e.g.
    ``discourse:forum``), ``description`` (optional), ``timezone`` (optional IANA name of the
    community), ``page_size`` (rows per page, default 5000) and one ``[queries.<name>]`` table
    per query (names: letters, digits, ``_``) with:

    * ``stream``: ``users`` | ``content`` | ``engagement_events``;
    * ``sql``: a plain ``SELECT`` returning the canonical columns of that stream by name
      (optional canonical columns may be left out; ``source`` and ``content_hash`` are filled
      by the connector), plus the watermark and key columns. The connector binds the interval
      itself: it wraps the query as
      ``select * from (<sql>) q where (q.<watermark>, q.<key>) > ($1, $2) and q.<watermark> < $3
      order by q.<watermark>, q.<key> limit <page_size>`` (keyset pagination; PostgreSQL pushes
      the predicates into a simple subquery, so an index on the source's ``(updated_at, id)`` is used);
    * ``watermark_column``: the output column holding the row's last change (a timestamp or
      date; rows where it is null are never read);
    * ``key_column``: the output column that makes ``(watermark, key)`` unique (the primary key);
    * ``columns`` (optional): ``{canonical_column = "output_column"}`` renames;
    * ``body_format`` (optional): ``text`` (default: ``body_text`` kept as is, e.g. Markdown) or
      ``html`` (reduced to text by :func:`warehouse.sources.html_text.html_to_text`);
    * ``watermark_granularity`` (optional): ``exact`` (default) or ``day`` for a date column
      filled during the day (Discourse ``topic_views.viewed_at``): only whole days before
      ``until`` are read, so rows added later the same day are never skipped;
    * ``page_size`` (optional): overrides the top-level one.

    An optional output column ``skip_reason`` (text) marks rows left out by a documented rule:
    a row with a non-null value is read, counted under that rule in ``StreamCounts.skip_rules``
    and not emitted.

Reading
    Pages are read through the ADBC PostgreSQL driver (``adbc_driver_postgresql.dbapi``;
    ``fetch_arrow_table`` → polars), never row by row, in a ``REPEATABLE READ, READ ONLY``
    transaction (one snapshot for every page of every query, unless a retry reconnects) with
    ``statement_timeout`` set per transaction. Connection errors, statement timeouts and
    replica recovery conflicts are retried with exponential backoff (tenacity); a retry
    reconnects and resumes after the last fully read page (the keyset), so a dropped connection
    loses and duplicates nothing. Other errors (a bad column, a syntax error) are not retried.

Watermarks
    Each query has its own watermark in the SOURCE's terms (``ops.source_watermarks``: the last
    ``(watermark value, key)`` read, the key stored as JSON so integers stay integers). A query
    reads rows after ``min(since, its watermark)`` (from the watermark alone when ``since`` is
    None; everything when neither exists) and before ``until``, so a missed or paused interval
    is caught up and a re-run re-reads the current state of the interval's rows (upserts make
    that a no-op). ``until`` is capped at ``now - settle_s`` so rows committed late by a long
    platform transaction are not passed over. The new watermarks travel with the extract
    (:attr:`PostgresExtract.source_watermarks`), are staged at landing
    (:meth:`PostgresExtract.stage_bookkeeping`) and advanced only in the load transaction
    (:func:`warehouse.watermarks.advance_watermarks`), never at extract.

Counts and quarantine
    Per canonical stream, ``read`` counts the rows returned; each is emitted, skipped (by its
    ``skip_reason``, or ``read again in this extract (the later copy is kept)`` when two queries
    or a reconnect return the same natural key) or quarantined: ``missing_id`` (a null id),
    ``bad_timestamp`` (a null ``created_at``/``occurred_at``), ``future_timestamp`` (after
    ``now``), ``unknown_kind`` (a content kind outside the canonical kinds). *Validate*
    (:mod:`warehouse.load`) then quarantines dates before the timestamp floor and events more
    than a day before their post (``implausible_timestamp``), references to posts absent from
    the warehouse and the batch (``dangling_reference``) and, cascading, the replies and
    actions of a quarantined post (``parent_quarantined``), so one bad row never stops a load.
"""

from __future__ import annotations

import logging
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import duckdb
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from warehouse.canonical import (
    CONTENT_KINDS,
    OPTIONAL_COLUMNS,
    SCHEMAS,
    STREAMS,
    Extract,
    QuarantineLog,
    StreamCounts,
    conform,
    content_hash,
)
from warehouse.watermarks import QueryWatermark, stage_source_watermarks

log = logging.getLogger(__name__)

PRESETS_DIR = Path(__file__).with_name("presets")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Canonical columns the connector fills itself (a query must not return them).
_FILLED = {"source", "content_hash"}
#: Required non-null columns per stream and the quarantine reason when one is null.
_REQUIRED: dict[str, dict[str, str]] = {
    "users": {"user_id": "missing_id"},
    "content": {"content_id": "missing_id", "kind": "unknown_kind", "created_at": "bad_timestamp"},
    "engagement_events": {
        "event_id": "missing_id",
        "event_type": "missing_value",
        "content_id": "missing_reference",
        "occurred_at": "bad_timestamp",
        "time_precision": "missing_value",
    },
}
_TIME_COLUMN = {"users": "created_at", "content": "created_at", "engagement_events": "occurred_at"}


class MappingError(ValueError):
    """A mapping file is invalid; the message names the file, the key and the fix."""


class PostgresSourceError(RuntimeError):
    """Reading the platform database failed (after retries, where retrying makes sense)."""


# ---------------------------------------------------------------------------------------------
# Mapping files


class QuerySpec(BaseModel):
    """One ``[queries.<name>]`` table of a mapping file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stream: Literal["users", "content", "engagement_events"]
    sql: str = Field(min_length=1)
    watermark_column: str
    key_column: str
    columns: dict[str, str] = Field(default_factory=dict)
    body_format: Literal["text", "html"] = "text"
    watermark_granularity: Literal["exact", "day"] = "exact"
    page_size: int | None = Field(None, ge=1, le=1_000_000)

    @field_validator("watermark_column", "key_column")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError(f"{v!r} is not a plain column name (letters, digits, _); alias the expression in the sql")
        return v

    @field_validator("sql")
    @classmethod
    def _select(cls, v: str) -> str:
        head = v.strip().lower()
        if not (head.startswith("select") or head.startswith("with")):
            raise ValueError("must be a SELECT (or WITH ... SELECT) statement")
        if ";" in v.strip().rstrip(";"):
            raise ValueError("must be one statement (no ';' inside)")
        return v.strip().rstrip(";")


class SourceMapping(BaseModel):
    """A validated mapping file: which SQL feeds which canonical stream, with its watermark."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"  # the preset or file stem (default source name prefix)
    source: str | None = None
    description: str | None = None
    timezone: str | None = None
    page_size: int = Field(5000, ge=1, le=1_000_000)
    queries: dict[str, QuerySpec]

    @field_validator("queries")
    @classmethod
    def _queries(cls, v: dict[str, QuerySpec]) -> dict[str, QuerySpec]:
        if not v:
            raise ValueError("declare at least one [queries.<name>] table")
        for name, q in v.items():
            if not _IDENT.match(name):
                raise ValueError(f"query name {name!r}: use letters, digits and _")
            bad = [c for c in q.columns if c not in SCHEMAS[q.stream] or c in _FILLED]
            if bad:
                raise ValueError(
                    f"query {name!r}: columns {bad} are not canonical {q.stream} columns you may map; "
                    f"valid: {sorted(set(SCHEMAS[q.stream]) - _FILLED)}"
                )
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None and v not in zoneinfo.available_timezones():
            raise ValueError(f"unknown IANA timezone {v!r}; use e.g. 'Europe/Berlin'")
        return v


def preset_names() -> list[str]:
    """The built-in presets (``warehouse/sources/presets/*.toml`` stems), e.g. ``["discourse"]``."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def load_mapping(path: Path | str | None = None, *, preset: str | None = None) -> SourceMapping:
    """Read and validate a mapping file (or a built-in preset).

    Args:
        path: a TOML mapping file (see the module docstring for its format).
        preset: the name of a built-in preset instead (``discourse``).

    Raises:
        MappingError: naming the file, each bad key (``queries.posts.watermark_column``) and the fix;
            also when both or neither of ``path`` and ``preset`` are given, or the file is missing.
    """
    if (path is None) == (preset is None):
        raise MappingError(
            "give either a mapping file (--mapping FILE) or a preset (--preset NAME), not both or neither"
        )
    if preset is not None:
        if preset not in preset_names():
            raise MappingError(f"unknown preset {preset!r}; built-in presets: {', '.join(preset_names())}")
        file = PRESETS_DIR / f"{preset}.toml"
    else:
        file = Path(path)  # type: ignore[arg-type]
    if not file.is_file():
        raise MappingError(f"mapping file {file} does not exist")
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{file}: not valid TOML: {exc}") from None
    data.setdefault("name", file.stem)
    try:
        return SourceMapping.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            fix = {
                "missing": "add it",
                "extra_forbidden": "remove it (unknown key) or fix its spelling",
            }.get(err["type"], err["msg"])
            lines.append(f"{key}: {fix}" if err["type"] in {"missing", "extra_forbidden"} else f"{key}: {err['msg']}")
        raise MappingError(f"invalid mapping file {file}:\n  " + "\n  ".join(lines)) from None


# ---------------------------------------------------------------------------------------------
# DSNs


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***`` (URL or ``key=value`` form), for messages and logs."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        if parts.password is not None:
            host = parts.hostname or ""
            if parts.port:
                host = f"{host}:{parts.port}"
            netloc = f"{parts.username}:***@{host}" if parts.username else f":***@{host}"
            parts = parts._replace(netloc=netloc)
        query = re.sub(r"(password=)[^&]*", r"\1***", parts.query)
        return urlunsplit(parts._replace(query=query))
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)


def _redact_text(text: str, dsn: str) -> str:
    """Remove the DSN's password from any text (driver messages may echo connection strings)."""
    pw = urlsplit(dsn).password if "://" in dsn else None
    if pw:
        text = text.replace(pw, "***")
    return text.replace(dsn, redact_dsn(dsn))


def database_name(dsn: str) -> str:
    """The database a DSN names (``postgresql://host/forum`` → ``forum``; ``dbname=forum`` → ``forum``)."""
    if "://" in dsn:
        return urlsplit(dsn).path.lstrip("/") or "postgres"
    m = re.search(r"dbname\s*=\s*'?([^'\s]+)", dsn)
    return m.group(1) if m else "postgres"


def _adbc_uri(dsn: str) -> str:
    """ADBC wants ``postgresql://``; accept SQLAlchemy's ``postgresql+psycopg://`` too."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", dsn)


def source_name(mapping: SourceMapping, dsn: str) -> str:
    """The warehouse ``source`` of this mapping and database: ``mapping.source`` or ``<name>:<database>``."""
    return mapping.source or f"{mapping.name}:{database_name(dsn)}"


# ---------------------------------------------------------------------------------------------
# Watermarks of the source (in the source's terms: warehouse.watermarks.QueryWatermark)


@dataclass
class PostgresExtract(Extract):
    """An :class:`Extract` plus the source watermarks reached, to be advanced at load time."""

    source_watermarks: list[QueryWatermark] = field(default_factory=list)

    def stage_bookkeeping(self, con: duckdb.DuckDBPyConnection, run_id: str) -> None:
        """Stage :attr:`source_watermarks` in ``ops.source_watermarks_pending`` (replacing a retry's rows).

        Called by the landing transaction; the load advances ``ops.source_watermarks``.
        """
        stage_source_watermarks(con, run_id, self.source, self.source_watermarks)


# ---------------------------------------------------------------------------------------------
# Reading


def _retryable(exc: BaseException) -> bool:
    """Connection loss, statement timeout (57014), recovery conflicts (40001): worth another try."""
    import adbc_driver_manager

    if isinstance(exc, adbc_driver_manager.OperationalError):
        return True
    if isinstance(exc, adbc_driver_manager.Error):
        state = getattr(exc, "sqlstate", None) or ""
        return state.startswith("08") or state in {"57014", "57P01", "57P02", "57P03", "40001"}
    return isinstance(exc, OSError)


class _Reader:
    """One read-only, repeatable-read session to the platform database, reopened after errors."""

    def __init__(self, dsn: str, statement_timeout_s: float) -> None:
        self.dsn = dsn
        self.timeout_ms = max(1, int(statement_timeout_s * 1000))
        self.con: Any = None
        self.connects = 0

    def _open(self) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        self.con = adbc.connect(_adbc_uri(self.dsn))
        self.connects += 1
        cur = self.con.cursor()
        # The first statement of the (implicit) transaction: one snapshot, and no writes ever.
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute(f"SET LOCAL statement_timeout = {self.timeout_ms}")
        cur.execute("SET LOCAL TimeZone = 'UTC'")
        cur.close()

    def close(self) -> None:
        if self.con is not None:
            con, self.con = self.con, None
            for end in (con.rollback, con.close):
                try:
                    end()
                except Exception:  # noqa: BLE001 - a dead connection cannot end cleanly
                    pass

    def fetch(self, sql: str, params: list[Any]) -> pl.DataFrame:
        """Run one page query and return it as a polars frame (via Arrow)."""
        if self.con is None:
            self._open()
        try:
            cur = self.con.cursor()
            try:
                cur.execute(sql, parameters=params or None)
                table = cur.fetch_arrow_table()
            finally:
                try:
                    cur.close()
                except Exception:  # noqa: BLE001 - the query's own error (if any) is what matters
                    pass
        except BaseException:
            self.close()
            raise
        return pl.from_arrow(table)  # type: ignore[return-value]


def _page_sql(
    q: QuerySpec, lower: tuple[str, Any, Any] | None, until: datetime | None, limit: int
) -> tuple[str, list[Any]]:
    """The keyset page query for ``q``: rows after ``lower`` and before ``until``, in (watermark, key) order."""
    wm, key = f'pulse_q."{q.watermark_column}"', f'pulse_q."{q.key_column}"'
    where, params = [f"{wm} is not null"], []
    if lower is not None:
        kind, value, k = lower
        if kind == "from":
            params.append(value)
            where.append(f"{wm} >= ${len(params)}")
        else:
            params += [value, k]
            where.append(f"({wm}, {key}) > (${len(params) - 1}, ${len(params)})")
    if until is not None:
        params.append(until)
        where.append(f"{wm} < ${len(params)}")
    sql = (
        f"select * from (\n{q.sql}\n) as pulse_q\nwhere {' and '.join(where)}\norder by {wm}, {key}\nlimit {int(limit)}"
    )
    return sql, params


def _as_datetime(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v
    if isinstance(v, date):
        return datetime.combine(v, time())
    raise TypeError(f"watermark value {v!r} is neither a timestamp nor a date")


def _naive_utc_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Timestamps with a time zone → naive UTC (the warehouse convention); dates → midnight."""
    casts = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            casts.append(pl.col(name).dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        elif isinstance(dtype, pl.Datetime) and dtype.time_unit != "us":
            casts.append(pl.col(name).dt.cast_time_unit("us"))
    return df.with_columns(casts) if casts else df


def extract_postgres(
    dsn: str,
    mapping: SourceMapping,
    *,
    watermarks: Mapping[str, QueryWatermark] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime,
    page_size: int | None = None,
    statement_timeout_s: float = 300.0,
    max_attempts: int = 5,
    backoff_s: float = 1.0,
    settle_s: float = 0.0,
    on_page: Callable[[str, int, int], None] | None = None,
) -> PostgresExtract:
    """Read the rows changed in ``[min(since, watermark), until)`` from every query of ``mapping``.

    Args:
        dsn: ``postgresql://user:password@host:port/dbname`` (``postgresql+psycopg://`` accepted).
            Never logged: messages carry :func:`redact_dsn`.
        mapping: from :func:`load_mapping`.
        watermarks: ``{query name: QueryWatermark}`` from
            :func:`warehouse.watermarks.get_source_watermarks` (None or empty: no watermark yet).
        since, until: the data interval, naive UTC; see "Watermarks" in the module docstring.
        now: naive UTC; rows dated after it are quarantined (``future_timestamp``).
        page_size: rows per page, overriding the mapping's.
        statement_timeout_s: PostgreSQL ``statement_timeout`` per page query, seconds.
        max_attempts: tries per page (connection errors, timeouts); 1 = no retry.
        backoff_s: first wait between tries, seconds, doubling each time (capped at 30 s).
        settle_s: ``until`` is capped at ``now - settle_s``.
        on_page: test hook called after each page as ``on_page(query, page_number, rows)``.

    Returns:
        :class:`PostgresExtract` whose counts reconcile and whose ``source_watermarks`` hold,
        per query that returned rows, the last ``(watermark, key)`` read.

    Raises:
        PostgresSourceError: the database stayed unreachable or too slow after ``max_attempts``
            tries, or a query failed (the message names the query and the driver's error,
            without the password).
    """
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

    watermarks = dict(watermarks or {})
    source = source_name(mapping, dsn)
    cap = now - timedelta(seconds=settle_s)
    until_eff = min(until, cap) if until is not None else cap
    reader = _Reader(dsn, statement_timeout_s)
    qlog = QuarantineLog(source)
    counts = {s: StreamCounts() for s in STREAMS}
    parts: dict[str, list[pl.DataFrame]] = {s: [] for s in STREAMS}
    reached: list[QueryWatermark] = []

    def _before_sleep(state: Any) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "postgres source %s: attempt %d failed (%s); retrying after %.1fs",
            redact_dsn(dsn),
            state.attempt_number,
            _redact_text(str(exc).splitlines()[0] if exc else "", dsn),
            state.next_action.sleep if state.next_action else 0,
        )

    try:
        for name, q in mapping.queries.items():
            limit = page_size or q.page_size or mapping.page_size
            q_until = until_eff
            if q.watermark_granularity == "day":
                q_until = datetime.combine(q_until.date(), time())
            wm = watermarks.get(name)
            lower: tuple[str, Any, Any] | None = None
            if wm is not None and (since is None or since > wm.value):
                lower = ("after", wm.value, wm.key)
            elif since is not None:
                lower = ("from", since, None)
            page = 0
            last: QueryWatermark | None = None
            while True:
                sql, params = _page_sql(q, lower, q_until, limit)
                try:
                    df = Retrying(
                        stop=stop_after_attempt(max(1, max_attempts)),
                        wait=wait_exponential(multiplier=backoff_s, max=30),
                        retry=retry_if_exception(_retryable),
                        before_sleep=_before_sleep,
                        reraise=True,
                    )(reader.fetch, sql, params)
                except Exception as exc:  # noqa: BLE001 - re-raised with context, password removed
                    state = getattr(exc, "sqlstate", None)
                    detail = _redact_text(str(exc).strip(), dsn)
                    hint = (
                        f" (statement_timeout {statement_timeout_s:g}s exceeded on every try: raise "
                        "PULSE_POSTGRES_STATEMENT_TIMEOUT or add an index on the watermark column)"
                        if state == "57014"
                        else ""
                    )
                    retried = f" after {max_attempts} tries" if _retryable(exc) else ""
                    raise PostgresSourceError(
                        f"postgres source {redact_dsn(dsn)}: query {name!r} page {page + 1} failed{retried}{hint}: {detail}"
                    ) from None
                page += 1
                if df.height:
                    missing = [c for c in (q.watermark_column, q.key_column) if c not in df.columns]
                    if missing:  # pragma: no cover - the wrapper's order by would have failed first
                        raise MappingError(f"query {name!r} returns no column {missing}")
                    row = df.row(df.height - 1, named=True)
                    last = QueryWatermark(
                        name, q.watermark_column, q.key_column, _as_datetime(row[q.watermark_column]), row[q.key_column]
                    )
                    lower = ("after", row[q.watermark_column], row[q.key_column])
                    qlog.scope = name  # payload samples are capped per reason and query
                    parts[q.stream].append(_canonical(df, name, q, source, counts[q.stream], qlog, now))
                if on_page is not None:
                    on_page(name, page, df.height)
                if df.height < limit:
                    break
            if last is not None:
                reached.append(last)
            log.info("postgres source %s: query %s read in %d page(s)", source, name, page)
    finally:
        reader.close()

    frames: dict[str, pl.DataFrame] = {}
    for stream in STREAMS:
        keys = "user_id" if stream == "users" else "content_id" if stream == "content" else "event_id"
        df = pl.concat(parts[stream], how="vertical_relaxed") if parts[stream] else pl.DataFrame(schema=SCHEMAS[stream])
        df = conform(df, stream)
        dupes = df.height - df.n_unique(subset=[keys])
        if dupes:
            counts[stream].skip("read again in this extract (the later copy is kept)", dupes)
            df = df.unique(subset=[keys], keep="last", maintain_order=True)
        counts[stream].emitted = df.height
        frames[stream] = df
    return PostgresExtract(
        source=source,
        users=frames["users"],
        content=frames["content"],
        engagement_events=frames["engagement_events"],
        quarantine=qlog.frame(),
        quarantine_counts=qlog.counts_frame(),
        counts=counts,
        synthetic=False,
        timezone=mapping.timezone or "UTC",
        since=since,
        until=until_eff,
        source_watermarks=reached,
    )


def _canonical(
    df: pl.DataFrame, name: str, q: QuerySpec, source: str, counts: StreamCounts, qlog: QuarantineLog, now: datetime
) -> pl.DataFrame:
    """One page of query ``name`` → canonical rows of ``q.stream``; counts reads, skips and quarantine."""
    stream = q.stream
    counts.read += df.height
    df = _naive_utc_frame(df)
    if q.columns:
        df = df.rename({out: canon for canon, out in q.columns.items() if out in df.columns and out != canon})
    if "skip_reason" in df.columns:
        skipped = df.filter(pl.col("skip_reason").is_not_null())
        for rule, n in skipped.group_by("skip_reason").len().iter_rows():
            counts.skip(str(rule), n)
        df = df.filter(pl.col("skip_reason").is_null())
    schema = SCHEMAS[stream]
    missing = [c for c in schema if c not in df.columns and c not in _FILLED and c not in OPTIONAL_COLUMNS[stream]]
    if missing:
        raise MappingError(
            f"query {name!r} (stream {stream}) returns no column {missing}; alias them in its sql "
            f"or map them with [queries.{name}.columns]"
        )
    df = df.with_columns(pl.lit(source).alias("source"))
    for col, dtype in schema.items():
        if col in df.columns and col not in {"tags"} and dtype == pl.String() and df.schema[col] != pl.String():
            df = df.with_columns(pl.col(col).cast(pl.String))
    if stream == "content":
        if q.body_format == "html":
            from warehouse.sources.html_text import html_to_text

            df = df.with_columns(
                pl.col("body_text").map_elements(html_to_text, return_dtype=pl.String, skip_nulls=False)
            )
        df = df.with_columns(
            pl.col("tags").fill_null(pl.lit([], dtype=pl.List(pl.String))),
            pl.struct("kind", "title", "body_text")
            .map_elements(lambda r: content_hash(r["kind"] or "", r["title"], r["body_text"]), return_dtype=pl.String)
            .alias("content_hash"),
        )
    # Quarantine: null required values, unknown kinds, future timestamps.
    bad = pl.lit(None, dtype=pl.String)
    for col, reason in reversed(_REQUIRED[stream].items()):
        bad = pl.when(pl.col(col).is_null()).then(pl.lit(reason)).otherwise(bad)
    if stream == "content":
        bad = (
            pl.when(pl.col("kind").is_not_null() & ~pl.col("kind").is_in(sorted(CONTENT_KINDS)))
            .then(pl.lit("unknown_kind"))
            .otherwise(bad)
        )
    tcol = _TIME_COLUMN[stream]
    bad = pl.when(bad.is_null() & (pl.col(tcol) > now)).then(pl.lit("future_timestamp")).otherwise(bad)
    df = df.with_columns(bad.alias("_reason"))
    rejected = df.filter(pl.col("_reason").is_not_null())
    key = "user_id" if stream == "users" else "content_id" if stream == "content" else "event_id"
    for row in rejected.iter_rows(named=True):
        reason = row.pop("_reason")
        qlog.add(stream, row.get(key), reason, f"query {name!r}: {reason.replace('_', ' ')}", row)
    counts.quarantined += rejected.height
    return conform(df.filter(pl.col("_reason").is_null()).drop("_reason"), stream)
