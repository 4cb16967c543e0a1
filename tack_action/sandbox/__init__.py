"""Sandboxes: isolated checkouts where agents and gates run."""

from .base import CommandHandle, ExecResult, Sandbox, SandboxProvider

__all__ = ["CommandHandle", "ExecResult", "Sandbox", "SandboxProvider"]
