"""Fake coding-agent CLIs (``claude``, ``codex``, ``pi``) that replay transcripts."""
