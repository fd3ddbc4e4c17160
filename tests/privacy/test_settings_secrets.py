"""Secrets never live in a config file: the TOML loader refuses them and names the variable to use."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.text(min_size=1, max_size=12), st.one_of(st.none(), st.text(max_size=20))), min_size=1, max_size=40
    )
)
def test_sql_pseudonym_equals_the_python_hmac_per_row(rows: list[tuple[str, str | None]]) -> None:
    """ops.pseudonym (migration 013: the key check in its own branch, so the HMAC pads fold to
    constants) gives Python's value on every row of a table, None for a None id, and fails loudly
    in a session without the key."""
    import duckdb

    from warehouse.db import connect, migrate
    from warehouse.privacy import pseudonym
    from warehouse.privacy_keys import load_ring

    con = connect(":memory:")
    migrate(con)
    con.execute("create table t (i integer, src varchar, uid varchar)")
    con.executemany("insert into t values (?, ?, ?)", [(i, s, u) for i, (s, u) in enumerate(rows)])
    got = [r[0] for r in con.execute("select ops.pseudonym(src, uid) from t order by i").fetchall()]
    key = load_ring().current.pseudonym_key
    assert got == [pseudonym(s, u, key) for s, u in rows]
    con.execute("reset variable pulse_pseudonym_key")
    if any(u is not None for _, u in rows):
        with pytest.raises(duckdb.InvalidInputException, match="privacy key not loaded"):
            con.execute("select ops.pseudonym(src, uid) from t").fetchall()
