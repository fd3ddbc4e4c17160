"""Settings, read once at the edge (CLI, DAG, dashboards) with pydantic-settings.

Sources, highest priority first: keyword arguments, environment variables ``PULSE_*``
(nested keys with ``__``, e.g. ``PULSE_THRESHOLDS__TOXICITY=0.7``), the TOML file named by
``PULSE_CONFIG`` (default ``pulse.toml`` in the working directory, if present), defaults.
A bad value raises :class:`ConfigError` naming the key and the fix.
"""

from __future__ import annotations

import functools
import os
import zoneinfo
from pathlib import Path
from typing import Any

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
            quarantined (0.0–1.0).
        score_batch_size: texts per scoring batch.
        airflow_pool: the one-slot Airflow pool shared by warehouse-writing tasks.
        alert_webhook: URL the DAGs' failure notifier posts to (a secret: environment only).
        data_docs_dir: where each run builds Great Expectations' Data Docs (one site per suite);
            by default the dashboards' static folder, so the Pipeline health page links to it.
        freshness_max_lag_hours: the freshness expectation's limit on the age of the newest
            record, relative to the end of the run's data interval (or now), in hours.
        volume_band_min_runs: previous successful runs needed before the volume band applies.
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
    score_batch_size: int = Field(64, ge=1, le=4096)
    airflow_pool: str = "pulse_warehouse"
    alert_webhook: SecretStr | None = None
    data_docs_dir: Path = Path(__file__).resolve().parents[1] / "dashboards" / "static" / "data_docs"
    freshness_max_lag_hours: float = Field(48.0, gt=0)
    volume_band_min_runs: int = Field(3, ge=2)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        if v not in _timezones():
            raise ValueError(f"unknown IANA timezone {v!r}; use a name such as 'Europe/Berlin' or 'UTC'")
        return v

    @field_validator("scorer")
    @classmethod
    def _known_scorer(cls, v: str) -> str:
        ok = v in {"auto", "lexical"} or v in {
            "detoxify:original", "detoxify:unbiased", "detoxify:multilingual"
        } or (v.startswith("checkpoint:") and len(v) > len("checkpoint:"))
        if not ok:
            raise ValueError(f"unknown scorer spec {v!r}; valid: {SCORER_SPECS_HELP}")
        return v

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
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, turning validation errors into one readable :class:`ConfigError`.

    ``overrides`` with value None are ignored (so CLI options left unset fall through to the
    environment and the config file).

    Raises:
        ConfigError: naming each bad key (as its ``PULSE_*`` variable), the value and the fix.
    """
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**kwargs)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = "__".join(str(p) for p in err["loc"]) or "(settings)"
            lines.append(
                f"PULSE_{key.upper()} (config key '{'.'.join(str(p) for p in err['loc'])}'): "
                f"{err['msg']} (got {err.get('input')!r})"
            )
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
