"""The project's one base error: every package raises a subclass, and the CLI and the server show
its message as is, so every message says what to do next."""

from __future__ import annotations


class AirgapError(Exception):
    """An error a user can act on. Its message is shown as is."""
