"""The API's settings: secrets only from the environment, bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulse.settings import ConfigError, Settings, load_settings


@pytest.mark.parametrize(
    ("line", "variable"),
    [('discourse_webhook_secret = "hunter2-hook"', "PULSE_DISCOURSE_WEBHOOK_SECRET"),
     ('discourse_api_key = "hunter2-key"', "PULSE_DISCOURSE_API_KEY")],
)  # fmt: skip
def test_webhook_secrets_are_refused_in_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str,
                                                      variable: str) -> None:  # fmt: skip
    path = tmp_path / "pulse.toml"
    path.write_text(f'scorer = "lexical"\n{line}\n', encoding="utf-8")
    monkeypatch.setitem(Settings.model_config, "toml_file", str(path))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert variable in str(err.value) and "hunter2" not in str(err.value)


def test_api_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_DISCOURSE_WEBHOOK_SECRET", "from-env")
    monkeypatch.setenv("PULSE_API_RATE_PER_SECOND", "2.5")
    s = load_settings()
    assert s.discourse_webhook_secret.get_secret_value() == "from-env" and "from-env" not in repr(s)
    assert (s.api_rate_per_second, s.api_rate_burst, s.api_port, s.api_max_comment_bytes) == (2.5, 20, 8000, 20_480)
    assert s.discourse_flag_back is False
    with pytest.raises(ConfigError, match="PULSE_DISCOURSE_FLAG_TYPE"):
        load_settings(discourse_flag_type="delete-it")
    with pytest.raises(ConfigError, match="PULSE_API_RATE_PER_SECOND"):
        load_settings(api_rate_per_second=0)
