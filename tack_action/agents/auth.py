"""The provider credential an agent runtime gets, from ``runtime_auth``.

With ``runtime_auth.mode: native`` the runtime authenticates itself from the
sandbox's own environment, which only a local sandbox can provide. With
``tack``, the credential named by ``runtime_auth.credential_ref`` is resolved
from credentials.yaml and returned as the environment of the agent command
alone. No GitHub or Daytona credential is ever part of it.
"""

from __future__ import annotations

import json

from ..config import TackConfig
from ..credentials import Credentials, OAuthCredential, load_credentials, resolve_value
from ..errors import ConfigError
from .pi import AUTH_VARIABLE

# The provider each runtime uses when runtime_auth.provider is empty.
DEFAULT_PROVIDERS = {"claude-code": "anthropic", "codex": "openai", "pi": "anthropic"}

# Environment variables that carry an API key, by provider, as the CLIs read them.
API_KEY_VARIABLES = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "google": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "xai": "XAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}

_CONFIG = "config.yaml"


def provider_name(config: TackConfig) -> str:
    """Return the LLM provider the configured runtime talks to."""
    runtime = config.agents.runtime
    if config.runtime_auth.provider:
        return config.runtime_auth.provider
    if runtime == "pi" and config.agents.pi.provider:
        return config.agents.pi.provider
    return DEFAULT_PROVIDERS.get(runtime, "")


def credential_env(
    config: TackConfig, credentials: Credentials | None = None
) -> dict[str, str]:
    """Return the environment that carries the runtime's provider credential.

    Returns an empty mapping in native mode. Raises ConfigError when native
    mode is used with a remote sandbox, when the credential is missing, or
    when the runtime cannot use the configured method.
    """
    runtime = config.agents.runtime
    auth = config.runtime_auth
    if runtime == "command":
        return {}

    if auth.mode == "native":
        if config.sandbox.provider != "local":
            raise ConfigError(
                _CONFIG,
                "runtime_auth.mode",
                f"'native' authentication works only with local sandboxes, but "
                f"sandbox.provider is {config.sandbox.provider!r}. Set "
                "runtime_auth.mode: tack and runtime_auth.credential_ref to a "
                "providers entry in credentials.yaml.",
            )
        return {}

    if auth.runtime and auth.runtime != runtime:
        raise ConfigError(
            _CONFIG,
            "runtime_auth.runtime",
            f"runtime_auth.runtime is {auth.runtime!r} but agents.runtime is "
            f"{runtime!r}; make them the same or leave runtime_auth.runtime empty.",
        )

    provider = provider_name(config)
    reference = auth.credential_ref or provider
    credentials = credentials if credentials is not None else load_credentials()
    stored = credentials.providers.get(reference)
    if stored is None:
        raise ConfigError(
            credentials.path,
            f"providers.{reference}",
            f"runtime_auth.credential_ref names {reference!r}, but credentials.yaml "
            f"has no providers.{reference} entry. Add it, for example with "
            f"`tack-action auth add {reference}`.",
        )

    is_oauth = isinstance(stored, OAuthCredential)
    if is_oauth != (auth.method == "oauth"):
        raise ConfigError(
            credentials.path,
            f"providers.{reference}",
            f"runtime_auth.method is {auth.method!r}, but providers.{reference} "
            f"has type {stored.type!r}; make them agree.",
        )

    secret = credentials.provider_key(reference) or ""
    if runtime == "pi":
        return _pi_env(provider, stored, secret, credentials)
    if runtime == "claude-code":
        variable = "CLAUDE_CODE_OAUTH_TOKEN" if is_oauth else "ANTHROPIC_API_KEY"
        return {variable: secret}

    if is_oauth:
        raise ConfigError(
            _CONFIG,
            "runtime_auth.method",
            "the codex runtime takes an OpenAI API key, not OAuth; set "
            "runtime_auth.method: api_key, or use agents.runtime: pi with the "
            "openai-codex provider for ChatGPT sign-in.",
        )
    return {"OPENAI_API_KEY": secret}


def _pi_env(
    provider: str,
    stored: object,
    secret: str,
    credentials: Credentials,
) -> dict[str, str]:
    if isinstance(stored, OAuthCredential):
        refresh = ""
        if stored.refresh_token:
            key = f"providers.{provider}.refresh_token"
            refresh = resolve_value(
                stored.refresh_token, key=key, path=credentials.path
            )
        # Pi stores expiry in milliseconds; an unknown expiry is "now", which
        # makes Pi refresh the token before its first request.
        expires = (stored.expires_at or 0) * 1000
        entry = {
            "type": "oauth",
            "access": secret,
            "refresh": refresh,
            "expires": expires,
        }
        return {AUTH_VARIABLE: json.dumps({provider: entry})}

    variable = API_KEY_VARIABLES.get(provider)
    if variable is None:
        entry = {"type": "api_key", "key": secret}
        return {AUTH_VARIABLE: json.dumps({provider: entry})}
    return {variable: secret}
