"""Secrets never live in a config file: the TOML loader refuses them and names the variable to use."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulse.settings import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``config(text)``: make ``text`` the TOML config file the settings read."""

    def _config(text: str) -> Path:
        path = tmp_path / "pulse.toml"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setitem(Settings.model_config, "toml_file", str(path))
        return path

    return _config


@pytest.mark.parametrize("line, key, variable", [
    ('alert_webhook = "https://hooks.slack.com/services/T0/B0/XYZ"', "alert_webhook", "PULSE_ALERT_WEBHOOK"),
    ('review_store_url = "postgresql+psycopg://mod:hunter2@db.internal/pulse"', "review_store_url", "PULSE_REVIEW_STORE_URL"),
    ('postgres_dsn = "host=db user=pulse password=hunter2"', "postgres_dsn", "PULSE_POSTGRES_DSN"),
    ('pseudonym_key = "0123456789abcdef"', "pseudonym_key", "PULSE_PSEUDONYM_KEY"),
    ('auth_cookie_key = "abc"', "auth_cookie_key", "PULSE_AUTH_COOKIE_KEY"),
    ('[sources.forum]\napi_token = "t0ken"', "sources.forum.api_token", "PULSE_SOURCES__FORUM__API_TOKEN"),
    ('db_password = "pw"', "db_password", "PULSE_DB_PASSWORD"),
])  # fmt: skip
def test_config_file_with_a_plaintext_secret_is_refused(config, line: str, key: str, variable: str) -> None:
    path = config(f'scorer = "lexical"\n{line}\n')
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert f"'{key}'" in message and variable in message and str(path) in message
    assert "hunter2" not in message and "t0ken" not in message  # the secret itself is never echoed


def test_secrets_from_the_environment_and_safe_urls_are_accepted(config, monkeypatch: pytest.MonkeyPatch) -> None:
    config(
        'scorer = "lexical"\nreview_store_url = "sqlite:////var/lib/pulse/review.sqlite"\nraw_body_retention_days = 30\n'
    )
    monkeypatch.setenv("PULSE_ALERT_WEBHOOK", "https://hooks.example/abc")
    monkeypatch.setenv("PULSE_PSEUDONYM_KEY", "from-the-environment")
    s = load_settings()
    assert s.alert_webhook.get_secret_value() == "https://hooks.example/abc"
    assert s.pseudonym_key.get_secret_value() == "from-the-environment" and "from-the" not in repr(s)
    assert (s.raw_body_retention_days, s.privacy_erasure_mode) == (30, "redact")


def test_bad_privacy_settings_name_the_variable(config) -> None:
    config('privacy_erasure_mode = "shred"\nraw_body_retention_days = -1\n')
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "PULSE_PRIVACY_ERASURE_MODE" in str(err.value) and "PULSE_RAW_BODY_RETENTION_DAYS" in str(err.value)


def test_example_config_is_secret_free_and_loads(config) -> None:
    config((REPO / "pulse.example.toml").read_text(encoding="utf-8"))
    assert load_settings().scorer == "auto"
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "pulse.toml" in ignored


def test_pseudonym_key_is_a_deprecated_alias_of_the_privacy_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """PULSE_PSEUDONYM_KEY (the old pseudonym-only key) still works: SHA-256 of it becomes the privacy key."""
    import hashlib

    from warehouse.db import connect, migrate
    from warehouse.privacy import pseudonym, warehouse_pseudonym
    from warehouse.privacy_keys import _warn_deprecated, derive

    con = connect(":memory:")
    migrate(con)
    generated = warehouse_pseudonym(con, "s", "7")
    assert generated == con.execute("select ops.pseudonym('s', '7')").fetchall()[0][0]
    monkeypatch.delenv("PULSE_PRIVACY_KEY", raising=False)
    monkeypatch.setenv("PULSE_PSEUDONYM_KEY", "my key")
    _warn_deprecated.cache_clear()  # warned once per process
    con = connect(":memory:")
    migrate(con)
    expected = pseudonym("s", "7", derive(hashlib.sha256(b"my key").digest()).pseudonym_key)
    assert con.execute("select ops.pseudonym('s', '7')").fetchall()[0][0] == expected != generated
    assert "PULSE_PSEUDONYM_KEY is deprecated" in caplog.text
