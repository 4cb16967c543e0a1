"""tack-action: a Tack-style orchestrator run from a GitHub Action."""

__version__ = "0.1.0"
