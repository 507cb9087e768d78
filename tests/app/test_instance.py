"""The instance folder's secrets: generated once (mode 0600), reused, overridden by the environment."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from sessionward.app.instance import SECRET_NAMES, load_secrets
from sessionward.exceptions import ConfigError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SESSIONWARD_KEK_FILE", *(f"SESSIONWARD_{n.upper()}" for n in SECRET_NAMES)):
        monkeypatch.delenv(name, raising=False)


def test_secrets_are_generated_once_then_reused(tmp_path: Path) -> None:
    first = load_secrets(tmp_path)
    assert len({first.csrf_key, first.refresh_key, first.kek}) == 3 and all(len(k) == 32 for k in vars(first).values())
    assert load_secrets(tmp_path) == first


def test_a_secrets_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_secrets(tmp_path)
    os.chmod(tmp_path / "secrets.json", 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_secrets(tmp_path)


def test_an_unreadable_secrets_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "secrets.json").write_text("{not json")
    os.chmod(tmp_path / "secrets.json", 0o600)
    with pytest.raises(ConfigError, match="unreadable"):
        load_secrets(tmp_path)


def test_environment_and_kek_file_win_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = load_secrets(tmp_path)
    csrf, kek = secrets.token_bytes(32), secrets.token_bytes(32)
    monkeypatch.setenv("SESSIONWARD_CSRF_KEY", csrf.hex())
    (tmp_path / "kek.hex").write_text(kek.hex() + "\n")
    monkeypatch.setenv("SESSIONWARD_KEK_FILE", str(tmp_path / "kek.hex"))
    loaded = load_secrets(tmp_path)
    assert (loaded.csrf_key, loaded.kek, loaded.refresh_key) == (csrf, kek, stored.refresh_key)


@pytest.mark.parametrize("setting", ["SESSIONWARD_CSRF_KEY", "SESSIONWARD_KEK_FILE"])
def test_bad_environment_secret_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  setting: str) -> None:
    if setting == "SESSIONWARD_KEK_FILE":
        (tmp_path / "kek.hex").write_text("not hex")
        monkeypatch.setenv(setting, str(tmp_path / "kek.hex"))
    else:
        monkeypatch.setenv(setting, "not hex")
    with pytest.raises(ConfigError) as exc:
        load_secrets(tmp_path)
    assert exc.value.setting == setting


@pytest.mark.parametrize("content", ['{"csrf_key": "not hex"}', '{"csrf_key": 42}', '["csrf_key"]'])
def test_a_malformed_secrets_file_is_a_config_error_naming_it_not_a_traceback(tmp_path: Path, content: str) -> None:
    """A hand-edited `secrets.json` stops start-up with one line naming the file (and the entry), never a
    ValueError/TypeError traceback, and never prints the stored value."""
    load_secrets(tmp_path)
    file = tmp_path / "secrets.json"
    file.write_text(content)
    with pytest.raises(ConfigError, match="secrets.json") as info:
        load_secrets(tmp_path)
    assert "not hex" not in str(info.value)
