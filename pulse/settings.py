"""Settings, read once at the edge (CLI, DAG, dashboards) with pydantic-settings.

Sources, highest priority first: keyword arguments, environment variables ``PULSE_*``
(nested keys with ``__``, e.g. ``PULSE_THRESHOLDS__TOXICITY=0.7``), the TOML file named by
``PULSE_CONFIG`` (default ``pulse.toml`` in the working directory, if present), defaults.
A bad value raises :class:`ConfigError` naming the key and the fix.
"""

from __future__ import annotations

import functools
import os
import re
import zoneinfo
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from moderation.policy import DEFAULT_HOLD_THRESHOLDS, DEFAULT_THRESHOLDS, validate_thresholds

SCORER_SPECS_HELP = "auto | lexical | detoxify:original | detoxify:unbiased | detoxify:multilingual | checkpoint:DIR"


@functools.cache
def _timezones() -> frozenset[str]:
    """The IANA timezone names (read once: the lookup scans the tz database)."""
    return frozenset(zoneinfo.available_timezones())


class ConfigError(ValueError):
    """A setting is invalid; the message names the key, the bad value and the fix."""


class Settings(BaseSettings):
    """Community Pulse configuration.

    Attributes:
        warehouse: the DuckDB file only the pipeline writes.
        serving: the read-only snapshot the dashboards open (replaced atomically per run).
        timezone: default IANA timezone of a community (a source may carry its own).
        scorer: toxicity model spec (see ``SCORER_SPECS_HELP``).
        thresholds / hold_thresholds: per-label flag and hold levels, probabilities in (0, 1].
        quarantine_max_share: a run fails when more than this share of the records read was
            quarantined (0.0–1.0); applies from two quarantined records on.
        timestamp_floor: records dated before it are quarantined as ``implausible_timestamp``
            (naive UTC; default 1990-01-01: sentinel dates such as 0001, 1900, 1970 fall below it).
        event_before_content_tolerance: an event dated more than this before its content is
            ``implausible_timestamp`` (default 1 day: Stack Exchange votes carry only a date).
        score_batch_size: texts per scoring batch at most.
        score_batch_budget: padded tokens per Detoxify batch at most (texts x the batch's longest
            text in tokens; texts are sorted by token length first), default 1024.
        scorer_quantization: numerics of the Detoxify engine: ``none`` (torch fp32, default) or
            ``onnx-int8`` (ONNX Runtime, int8 weights; built once and cached beside the checkpoint;
            its scores carry their own model id ``...+onnx-int8``).
        scorer_threads: intra-op threads the scorer uses; unset = the cores available to the process.
        airflow_pool: the one-slot Airflow pool shared by warehouse-writing tasks.
        alert_webhook: URL the DAGs' failure notifier posts to (a secret: environment only).
        data_docs_dir: where each run builds Great Expectations' Data Docs (one site per suite;
            they may hold sample unexpected values, i.e. members' data): by default
            ``data/data_docs`` beside the warehouse, created owner-only, never a folder Streamlit
            serves; the dashboards' Data Docs page (data engineers and admins) offers each site
            as a download after sign-in.
        freshness_max_lag_hours: the freshness expectation's limit on the age of the newest
            record, relative to the end of the run's data interval (or now), in hours.
        volume_band_min_runs: previous successful runs needed before the volume band applies.
        postgres_dsn: the live platform's database for ``--source postgres`` (a secret:
            environment ``PULSE_POSTGRES_DSN`` only; never printed), e.g.
            ``postgresql://reader:PW@replica:5432/discourse``.
        postgres_conn_id: the Airflow connection the DAG reads the DSN from when
            ``PULSE_POSTGRES_DSN`` is unset (default ``pulse_platform``).
        postgres_page_size: rows per keyset page read from PostgreSQL (default: the mapping's, 5000).
        postgres_statement_timeout: PostgreSQL ``statement_timeout`` per page query, seconds.
        postgres_max_attempts: tries per page on connection loss, timeouts and replica
            conflicts (exponential backoff from 1 s); 1 = no retry.
        postgres_settle_seconds: a run reads rows changed before ``now`` minus this many seconds,
            so rows committed late by a long platform transaction are not passed over.
        review_store_url: the review store (moderators' accounts and decisions; a secret:
            environment ``PULSE_REVIEW_STORE_URL`` or config): ``sqlite:///PATH`` (default
            ``data/review.sqlite`` in the repo, WAL mode) or ``postgresql+psycopg://USER:PW@HOST/DB``.
        repeat_offender_window_days: the moderation queue counts an author's prior flags and
            removals in this many days before the item (the repeat-offender signal).
        review_sla_hours: the response-time target for pending review items, hours (default 24):
            Moderation insights and the Overview count the items waiting longer (backlog).
        review_undo_seconds: how long after a decision its moderator may undo it (default 30 s;
            0 turns Undo off; a later change goes through Reopen, a decision row of its own).
        language_min_confidence: an item is routed to human review as "language not supported by
            model" only when lingua's confidence in the detected language is at least this (0–1;
            default 0.7: on the English beer dump 0.5 also routed English comments such as "Yes,
            the temperatures are in Fahrenheit" (German, 0.67)).
        auth_cookie_key: the review app's sign-in cookie signing key (a secret: environment
            ``PULSE_AUTH_COOKIE_KEY``); unset: a random key per app process, so sign-ins end
            when the app restarts.
        signin_max_failures: failed sign-ins for one username (known or not) within
            ``signin_lockout_minutes`` that lock it (default 5); see ``SECURITY.md``.
        signin_lockout_minutes: the counting window and how long a locked username stays locked
            (default 15 minutes, at most 1440 so the sign-in form's "try again after HH:MM UTC" is
            unambiguous); an admin unlocks earlier with ``pulse review unlock`` or on Users.
        privacy_erasure_mode: what ``pulse privacy forget-user`` does with the user's content:
            ``redact`` (title/body replaced by a marker, author pseudonymised: marts keep their
            counts) or ``delete`` (items and the votes on them removed).
        raw_body_retention_days: bodies (``staging.content.body_text``) of items older than
            this many days are replaced by a marker at every load; scores, hashes and aggregates
            stay. Unset (default): keep bodies.
        privacy_replace_mentions: ``pulse privacy forget-user`` replaces other members'
            ``@<name>`` mentions of the erased member by ``@`` + their pseudonym (default True).
        privacy_key: the privacy key ring (a secret: environment ``PULSE_PRIVACY_KEY`` only): keys
            separated by commas, the current one first, each hex or base64 of 32+ bytes; tombstone
            hashes and pseudonyms derive from it (HKDF; :mod:`warehouse.privacy_keys`, which reads
            the variable wherever the warehouse is opened). Unset: the key file.
        privacy_key_file: the key file used when ``PULSE_PRIVACY_KEY`` is unset (environment
            ``PULSE_PRIVACY_KEY_FILE`` only, read by :mod:`warehouse.privacy_keys`; default
            ``~/.config/pulse/privacy.key``, created 0600 on first use; a group/world-readable file
            is refused). Keep it outside ``data/`` and back it up apart from the data.
        pseudonym_key: deprecated alias of ``privacy_key`` (environment ``PULSE_PSEUDONYM_KEY``):
            when ``PULSE_PRIVACY_KEY`` is unset, SHA-256 of it is the privacy key (with a warning).
        api_host / api_port: where ``pulse api serve`` listens (default 127.0.0.1:8000).
        api_rate_per_second / api_rate_burst: each API key's token bucket (sustained requests per
            second; requests at once after idling); over it: 429 with ``Retry-After``.
        api_max_comment_bytes: largest ``comment.text`` in UTF-8 bytes (default 20480, Perspective's limit).
        api_max_request_bytes: largest request body (default 256 KiB: a 20 KB comment as JSON escapes).
        api_timeout_seconds: longest a request may wait for its body or its score (504 after).
        api_batch_wait_ms: longest a request waits for others to share its engine batch (default 5 ms).
        discourse_webhook_secret: the Discourse webhook's secret (a secret: environment
            ``PULSE_DISCOURSE_WEBHOOK_SECRET`` only); unset: the webhook refuses every delivery.
        discourse_source: the warehouse source the webhook's posts belong to: the same name the
            pipeline gives the forum (``discourse:<database>`` by default for ``--source postgres``).
        discourse_flag_back: flag posts the model flags back on Discourse (off by default), through
            ``discourse_url`` with ``discourse_api_key`` (a secret: environment
            ``PULSE_DISCOURSE_API_KEY`` only) acting as ``discourse_api_username``, with the flag type
            ``discourse_flag_type`` (inappropriate | spam | notify_moderators | off_topic).
        backup_key: the master key of ``pulse backup`` (AES-256-GCM; a secret: environment
            ``PULSE_BACKUP_KEY`` only; 32+ characters). Without it no backup can be written or read.
        backup_dest: where the ``warehouse_backup`` DAG writes (a folder or an fsspec URL such as
            ``s3://bucket/prefix``); the CLI takes ``--to`` / ``--in`` / ``--from``.
        backup_storage_options: options for the destination's fsspec filesystem, e.g.
            ``PULSE_BACKUP_STORAGE_OPTIONS__ENDPOINT_URL=http://minio:9000`` (credentials: the
            filesystem's own environment, e.g. ``AWS_ACCESS_KEY_ID``).
        backup_keep_daily / backup_keep_weekly / backup_keep_monthly / backup_keep_yearly:
            grandfather-father-son retention of ``pulse backup prune`` and the DAG (7 / 4 / 12 / 0).
        erasure_ledger: the append-only erasure ledger a restore re-applies (JSON lines, no
            identifiers); keep it off the warehouse's disk (default ``data/erasure_ledger.jsonl``).
        dump_cache: parse a Stack Exchange dump once into a Parquet cache and cut each data interval
            from it (default True; :mod:`warehouse.sources.dump_cache`); off: each interval parses
            the dump, passing over rows dated outside the interval.
        dump_cache_dir: where that cache lives (default ``dump_cache/`` beside the warehouse,
            created owner-only); resolved and exported as ``PULSE_DUMP_CACHE_IN_USE`` (empty when
            off), which the connector reads.

    A config file (TOML) may not hold secrets: a key named like ``*password*``, ``*secret*``,
    ``*token*``, ``*_key``, the ``alert_webhook``, or a URL/DSN with a password in it raises
    :class:`ConfigError` naming the key and the environment variable to use instead.
    """

    model_config = SettingsConfigDict(
        env_prefix="PULSE_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=os.environ.get("PULSE_CONFIG", "pulse.toml"),
    )

    warehouse: Path = Path("data/warehouse.duckdb")
    serving: Path = Path("data/serving.duckdb")
    timezone: str = "UTC"
    scorer: str = "auto"
    detoxify_checkpoint: Path | None = None
    detoxify_config_dir: Path | None = None
    thresholds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    hold_thresholds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_HOLD_THRESHOLDS))
    quarantine_max_share: float = Field(0.10, ge=0.0, le=1.0)
    timestamp_floor: datetime = datetime(1990, 1, 1)
    event_before_content_tolerance: timedelta = Field(timedelta(days=1), ge=timedelta(0))
    score_batch_size: int = Field(64, ge=1, le=4096)
    score_batch_budget: int = Field(1024, ge=16, le=1_048_576)
    scorer_quantization: Literal["none", "onnx-int8"] = "none"
    scorer_threads: int | None = Field(None, ge=1, le=1024)
    airflow_pool: str = "pulse_warehouse"
    alert_webhook: SecretStr | None = None
    data_docs_dir: Path = Path("data/data_docs")
    freshness_max_lag_hours: float = Field(48.0, gt=0)
    volume_band_min_runs: int = Field(3, ge=2)
    postgres_dsn: SecretStr | None = None
    postgres_conn_id: str = "pulse_platform"
    postgres_page_size: int | None = Field(None, ge=1, le=1_000_000)
    postgres_statement_timeout: float = Field(300.0, gt=0)
    postgres_max_attempts: int = Field(5, ge=1, le=50)
    postgres_settle_seconds: float = Field(60.0, ge=0)
    review_store_url: SecretStr = SecretStr(
        f"sqlite:///{Path(__file__).resolve().parents[1] / 'data' / 'review.sqlite'}"
    )
    repeat_offender_window_days: int = Field(90, ge=1, le=3650)
    review_sla_hours: float = Field(24.0, gt=0, le=24 * 365)
    review_undo_seconds: float = Field(30.0, ge=0, le=3600)
    language_min_confidence: float = Field(0.7, ge=0.0, le=1.0)
    auth_cookie_key: SecretStr | None = None
    signin_max_failures: int = Field(5, ge=1, le=1000)
    signin_lockout_minutes: float = Field(15.0, gt=0, le=1440)
    privacy_erasure_mode: Literal["redact", "delete"] = "redact"
    privacy_replace_mentions: bool = True
    raw_body_retention_days: int | None = Field(None, ge=0)
    privacy_key: SecretStr | None = None
    privacy_key_file: Path | None = None
    pseudonym_key: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_rate_per_second: float = Field(10.0, gt=0, le=100_000)
    api_rate_burst: int = Field(20, ge=1, le=100_000)
    api_max_comment_bytes: int = Field(20_480, ge=1, le=1_048_576)
    api_max_request_bytes: int = Field(262_144, ge=1024, le=16_777_216)
    api_timeout_seconds: float = Field(10.0, gt=0, le=600)
    api_batch_wait_ms: float = Field(5.0, ge=0, le=1000)
    discourse_webhook_secret: SecretStr | None = None
    discourse_source: str = "discourse:discourse"
    discourse_flag_back: bool = False
    discourse_url: str | None = None
    discourse_api_key: SecretStr | None = None
    discourse_api_username: str = "system"
    discourse_flag_type: Literal["inappropriate", "spam", "notify_moderators", "off_topic"] = "inappropriate"
    backup_key: SecretStr | None = None
    backup_dest: str | None = None
    backup_storage_options: dict[str, str] = Field(default_factory=dict)
    backup_keep_daily: int = Field(7, ge=0, le=3660)
    backup_keep_weekly: int = Field(4, ge=0, le=520)
    backup_keep_monthly: int = Field(12, ge=0, le=1200)
    backup_keep_yearly: int = Field(0, ge=0, le=100)
    erasure_ledger: Path = Path("data/erasure_ledger.jsonl")
    dump_cache: bool = True
    dump_cache_dir: Path | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        if v not in _timezones():
            raise ValueError(f"unknown IANA timezone {v!r}; use a name such as 'Europe/Berlin' or 'UTC'")
        return v

    @field_validator("privacy_key")
    @classmethod
    def _privacy_key_decodes(cls, v: SecretStr | None) -> SecretStr | None:
        from warehouse.privacy_keys import PrivacyKeyError, parse_key

        for i, part in enumerate((v.get_secret_value() if v else "").split(",")):
            if part.strip():
                try:
                    parse_key(part, f"entry {i + 1}")
                except PrivacyKeyError as exc:
                    raise ValueError(str(exc)) from None  # names the entry, never the value
        return v

    @field_validator("scorer")
    @classmethod
    def _known_scorer(cls, v: str) -> str:
        ok = (
            v in {"auto", "lexical"}
            or v in {"detoxify:original", "detoxify:unbiased", "detoxify:multilingual"}
            or (v.startswith("checkpoint:") and len(v) > len("checkpoint:"))
        )
        if not ok:
            raise ValueError(f"unknown scorer spec {v!r}; valid: {SCORER_SPECS_HELP}")
        return v

    @field_validator("scorer_quantization", mode="before")
    @classmethod
    def _known_quantization(cls, v: Any) -> Any:
        if v == "int8":
            raise ValueError(
                "'int8' (torch dynamic quantization) is not offered: torch 2.13 deprecates torch.ao.quantization; "
                "valid: none | onnx-int8 (ONNX Runtime int8)"
            )
        if v not in ("none", "onnx-int8"):
            raise ValueError(f"unknown quantization {v!r}; valid: none | onnx-int8")
        return v

    @property
    def models_dir(self) -> Path:
        """The models folder: ``models/`` beside the warehouse (``data/models`` by default), where
        ``make model`` / ``pulse moderation promote`` put the community model ``auto`` prefers."""
        return Path(self.warehouse).resolve().parent / "models"

    def scorer_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`moderation.scorers.load_scorer` from these settings.

        Returns:
            ``{checkpoint, config_dir, models_dir, batch_size, quantization, threads,
            max_batch_tokens}``, so the pipeline, ``pulse moderation evaluate`` and ``bias-audit``
            load a model the same way (``auto`` finds the promoted community model in
            :attr:`models_dir`, whatever the working directory).
        """
        return {
            "checkpoint": self.detoxify_checkpoint,
            "config_dir": self.detoxify_config_dir,
            "models_dir": self.models_dir,
            "batch_size": self.score_batch_size,
            "quantization": self.scorer_quantization,
            "threads": self.scorer_threads,
            "max_batch_tokens": self.score_batch_budget,
        }

    @model_validator(mode="after")
    def _thresholds_consistent(self) -> Settings:
        validate_thresholds(self.thresholds, self.hold_thresholds)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SecretFreeToml(settings_cls))


#: Config keys that are secrets by name (any value refused in a config file).
_SECRET_KEY_NAME = re.compile(
    r"password|passwd|secret|token|api_?key|cookie_key|privacy_key(?!_file)|pseudonym_key|backup_key|webhook",
    re.IGNORECASE,
)
#: A URL or DSN carrying a password: scheme://user:password@host, or key=value DSNs with password=.
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.\-]*://[^/@:\s]*:[^/@\s]+@|\bpassword\s*=", re.IGNORECASE)


def _secret_keys(data: Any, prefix: str = "") -> list[str]:
    """Dotted config keys in ``data`` (a parsed TOML document) that hold a plaintext secret."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict):
                found += _secret_keys(value, path + ".")
            elif value not in (None, "") and (
                _SECRET_KEY_NAME.search(str(key)) or (isinstance(value, str) and _URL_PASSWORD.search(value))
            ):
                found.append(path)
    return found


class _SecretFreeToml(TomlConfigSettingsSource):
    """The TOML config source, refusing any plaintext secret in the file (they belong in the environment)."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        bad = _secret_keys(self.toml_data)
        if bad:
            fixes = ", ".join(
                f"'{k}' (set PULSE_{k.replace('.', '__').upper()} in the environment instead)" for k in bad
            )
            raise ConfigError(
                f"the config file {self.toml_file_path} holds a plaintext secret: {fixes}. Remove it from the file and "
                "set the environment variable (or, under Airflow, an Airflow connection/variable exported to it)."
            )
        return data


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, turning validation errors into one readable :class:`ConfigError`.

    ``overrides`` with value None are ignored (so CLI options left unset fall through to the
    environment and the config file).

    Raises:
        ConfigError: naming each bad key (as its ``PULSE_*`` variable), the value and the fix.
    """
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings(**kwargs)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = "__".join(str(p) for p in err["loc"]) or "(settings)"
            got = "a value not shown: a secret" if _SECRET_KEY_NAME.search(key) else repr(err.get("input"))
            lines.append(
                f"PULSE_{key.upper()} (config key '{'.'.join(str(p) for p in err['loc'])}'): {err['msg']} (got {got})"
            )
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    # Process-wide policy, read where the warehouse layer acts (it does not import settings):
    # the key file, and the umask that makes every file this process creates owner-only.
    if settings.privacy_key_file is not None:
        os.environ["PULSE_PRIVACY_KEY_FILE"] = str(settings.privacy_key_file)
    cache = settings.dump_cache_dir or Path(settings.warehouse).resolve().parent / "dump_cache"
    os.environ["PULSE_DUMP_CACHE_IN_USE"] = str(cache) if settings.dump_cache else ""  # not a setting: never read back
    from warehouse.files import restrict_umask

    try:
        restrict_umask()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return settings
