"""Relay settings read from RELAY_* environment variables and checked at start."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from tack_action.errors import ConfigError

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SOURCE = "environment"


@dataclass(frozen=True)
class RelayConfig:
    """Validated relay settings; every field maps to one RELAY_* variable."""

    public_url: str
    callback_keys: dict[str, bytes]
    current_kid: str
    db_url: str = "sqlite:///relay.db"
    db_pool_size: int = 8
    api_tokens: tuple[str, ...] = ()
    oidc_issuers: tuple[str, ...] = (GITHUB_ISSUER,)
    allowed_owner_ids: frozenset[str] = frozenset()
    allowed_repo_ids: frozenset[str] = frozenset()
    max_body: int = 65536
    rate_per_s: float = 20.0
    rate_burst: int = 40
    channel_quota: int = 10000
    sandbox_limit: int = 256
    channel_ttl_s: int = 7 * 3600
    retention_s: int = 24 * 3600
    max_wait_s: int = 25
    stream_max_s: int = 300
    poll_interval_s: float = 0.2
    gc_interval_s: int = 60
    proxy_hops: int = 0

    @property
    def oidc_enabled(self) -> bool:
        """Whether OIDC tokens are accepted, which needs at least one allowlist."""
        return bool(self.allowed_owner_ids or self.allowed_repo_ids)


def load_config(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> RelayConfig:
    """Read RELAY_* settings from environ (default os.environ) plus overrides.

    Override keys drop the prefix (``{"PUBLIC_URL": ...}``). Raises ConfigError
    naming the variable when a value is missing or invalid.
    """
    source = dict(os.environ if environ is None else environ)
    values: dict[str, str] = {}
    for name, value in source.items():
        if name.startswith("RELAY_"):
            values[name] = value
    for key, value in (overrides or {}).items():
        values[f"RELAY_{key}"] = _to_text(value)

    public_url = _read_url(values, "RELAY_PUBLIC_URL")
    keys, current = _read_callback_keys(values)
    db_url = values.get("RELAY_DB_URL", "sqlite:///relay.db").strip()
    if not db_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise _invalid(
            "RELAY_DB_URL",
            db_url,
            "use sqlite:///PATH or postgresql://USER@HOST/DB",
        )

    api_tokens = tuple(_split(values.get("RELAY_API_TOKENS", "")))
    for token in api_tokens:
        if len(token) < 16:
            raise ConfigError(
                _SOURCE,
                "RELAY_API_TOKENS",
                "every token must be at least 16 characters long; "
                "generate one with `openssl rand -hex 32`",
            )

    issuers = tuple(_split(values.get("RELAY_OIDC_ISSUERS", GITHUB_ISSUER)))
    for issuer in issuers:
        _check_url("RELAY_OIDC_ISSUERS", issuer)
    owners = frozenset(_read_ids(values, "RELAY_ALLOWED_OWNER_IDS"))
    repos = frozenset(_read_ids(values, "RELAY_ALLOWED_REPO_IDS"))
    if not api_tokens and not (owners or repos):
        raise ConfigError(
            _SOURCE,
            "RELAY_ALLOWED_REPO_IDS",
            "no job can authenticate: set RELAY_ALLOWED_REPO_IDS or "
            "RELAY_ALLOWED_OWNER_IDS for GitHub OIDC, or RELAY_API_TOKENS",
        )
    if (owners or repos) and not issuers:
        raise ConfigError(
            _SOURCE, "RELAY_OIDC_ISSUERS", "is empty while an allowlist is set"
        )

    ttl = _read_int(values, "RELAY_CHANNEL_TTL_S", 7 * 3600, 1)
    retention = _read_int(values, "RELAY_RETENTION_S", 24 * 3600, 60)
    if retention < ttl:
        raise ConfigError(
            _SOURCE,
            "RELAY_RETENTION_S",
            f"{retention!r} is shorter than RELAY_CHANNEL_TTL_S={ttl!r}; "
            "keep events at least as long as a channel accepts callbacks",
        )

    return RelayConfig(
        public_url=public_url,
        callback_keys=keys,
        current_kid=current,
        db_url=db_url,
        db_pool_size=_read_int(values, "RELAY_DB_POOL_SIZE", 8, 1),
        api_tokens=api_tokens,
        oidc_issuers=issuers,
        allowed_owner_ids=owners,
        allowed_repo_ids=repos,
        max_body=_read_int(values, "RELAY_MAX_BODY", 65536, 1024),
        rate_per_s=_read_float(values, "RELAY_RATE_PER_S", 20.0, 0.01),
        rate_burst=_read_int(values, "RELAY_RATE_BURST", 40, 1),
        channel_quota=_read_int(values, "RELAY_CHANNEL_QUOTA", 10000, 1),
        sandbox_limit=_read_int(values, "RELAY_SANDBOX_LIMIT", 256, 1),
        channel_ttl_s=ttl,
        retention_s=retention,
        max_wait_s=_read_int(values, "RELAY_MAX_WAIT_S", 25, 0),
        stream_max_s=_read_int(values, "RELAY_STREAM_MAX_S", 300, 1),
        poll_interval_s=_read_float(values, "RELAY_POLL_INTERVAL_S", 0.2, 0.01),
        gc_interval_s=_read_int(values, "RELAY_GC_INTERVAL_S", 60, 1),
        proxy_hops=_read_int(values, "RELAY_PROXY_HOPS", 0, 0),
    )


def _to_text(value: object) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(item) for item in value)
    return str(value)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _invalid(name: str, value: str, fix: str) -> ConfigError:
    return ConfigError(_SOURCE, name, f"invalid value {value!r}; {fix}")


def _check_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid(name, value, "use an absolute http(s) URL")
    return value.rstrip("/")


def _read_url(values: Mapping[str, str], name: str) -> str:
    value = values.get(name, "").strip()
    if not value:
        raise ConfigError(
            _SOURCE,
            name,
            "is missing; set it to the relay's public base URL, "
            "e.g. https://relay.example.com",
        )
    return _check_url(name, value)


def _read_callback_keys(values: Mapping[str, str]) -> tuple[dict[str, bytes], str]:
    name = "RELAY_CALLBACK_KEYS"
    raw = values.get(name, "").strip()
    if not raw:
        raise ConfigError(
            _SOURCE,
            name,
            "is missing; set it to KID:BASE64 entries (at least 32 random bytes "
            "each, newest first), e.g. k1:$(openssl rand -base64 32)",
        )
    keys: dict[str, bytes] = {}
    for entry in _split(raw):
        kid, sep, encoded = entry.partition(":")
        if not sep or not _KID.match(kid):
            raise ConfigError(
                _SOURCE, name, f"entry for key id {kid!r} is not in KID:BASE64 form"
            )
        try:
            secret = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ConfigError(
                _SOURCE, name, f"key {kid!r} is not valid base64"
            ) from exc
        if len(secret) < 32:
            raise ConfigError(
                _SOURCE,
                name,
                f"key {kid!r} has {len(secret)} bytes; use at least 32 random bytes",
            )
        keys[kid] = secret
    return keys, next(iter(keys))


def _read_ids(values: Mapping[str, str], name: str) -> list[str]:
    ids = _split(values.get(name, ""))
    for item in ids:
        if not item.isdigit():
            raise _invalid(
                name,
                item,
                "list numeric GitHub ids (repository_id or repository_owner_id), "
                "not names",
            )
    return ids


def _read_int(values: Mapping[str, str], name: str, default: int, low: int) -> int:
    raw = values.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        number = int(raw)
    except ValueError as exc:
        raise _invalid(name, raw, "use a whole number") from exc
    if number < low:
        raise _invalid(name, raw, f"use a number of at least {low}")
    return number


def _read_float(
    values: Mapping[str, str], name: str, default: float, low: float
) -> float:
    raw = values.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        number = float(raw)
    except ValueError as exc:
        raise _invalid(name, raw, "use a number") from exc
    if number < low:
        raise _invalid(name, raw, f"use a number of at least {low}")
    return number
