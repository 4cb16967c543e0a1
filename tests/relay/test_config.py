"""RELAY_* settings are checked at start and errors name the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relay import create_app
from relay.config import load_config
from tack_action.errors import ConfigError
from tests.relay.conftest import CALLBACK_KEY, GUNICORN_CONF, REPO_ROOT

BASE = {
    "RELAY_PUBLIC_URL": "https://relay.example",
    "RELAY_CALLBACK_KEYS": f"k1:{CALLBACK_KEY}",
    "RELAY_API_TOKENS": "a-static-token-of-some-length",
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RELAY_PUBLIC_URL", ""),
        ("RELAY_PUBLIC_URL", "relay.example"),
        ("RELAY_CALLBACK_KEYS", "k1:c2hvcnQ="),
        ("RELAY_CALLBACK_KEYS", "no-colon"),
        ("RELAY_DB_URL", "mysql://x"),
        ("RELAY_MAX_BODY", "ten"),
        ("RELAY_RATE_PER_S", "0"),
        ("RELAY_ALLOWED_REPO_IDS", "octo/widgets"),
        ("RELAY_API_TOKENS", "short"),
        ("RELAY_RETENTION_S", "600"),
    ],
)
def test_load_config_invalid_names_variable(name: str, value: str) -> None:
    environ = {**BASE, name: value}

    with pytest.raises(ConfigError) as caught:
        load_config(environ)

    assert name in str(caught.value)


def test_load_config_needs_an_auth_method() -> None:
    environ = {k: v for k, v in BASE.items() if k != "RELAY_API_TOKENS"}

    with pytest.raises(ConfigError) as caught:
        load_config(environ)

    assert "RELAY_ALLOWED_REPO_IDS" in str(caught.value)


def test_load_config_overrides_environment() -> None:
    config = load_config(BASE, {"MAX_BODY": 2048, "ALLOWED_OWNER_IDS": ["1", "2"]})

    assert config.max_body == 2048
    assert config.allowed_owner_ids == frozenset({"1", "2"})
    assert config.oidc_enabled


def test_create_app_healthz_in_process(tmp_path: Path) -> None:
    overrides = {k.removeprefix("RELAY_"): v for k, v in BASE.items()}
    app = create_app({**overrides, "DB_URL": f"sqlite:///{tmp_path / 'r.db'}"})

    response = app.test_client().get("/healthz")

    assert response.status_code == 200


def test_gunicorn_bad_config_stops_startup(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    env.update({**BASE, "RELAY_PUBLIC_URL": "not a url"})
    command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]

    result = subprocess.run(
        [*command, "--bind", "127.0.0.1:0", "relay:create_app()"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert "RELAY_PUBLIC_URL" in result.stderr
