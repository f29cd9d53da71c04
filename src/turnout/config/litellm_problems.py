"""The problems a LiteLLM config's conversion finds, collected rather than raised.

One pass over the file reports everything: each problem names its path in the file, and what it
concerns is left out so the rest can still be converted and checked (`turnout.config.litellm`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from turnout.config.litellm_keys import misspelling
from turnout.errors import ConfigError


class Problems:
    """Warnings (keys ignored or read differently), errors, and deployments left out."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.errors: list[ConfigError] = []
        self.skipped: list[str] = []

    def warn(self, path: str, text: str) -> None:
        self.warnings.append(f"{path}: {text}")

    def ignore(self, path: str, reason: str) -> None:
        self.warn(path, f"ignored: {reason}")

    def unknown(self, path: str, key: Any, known: Iterable[str], reason: str) -> None:
        """A key turnout does not read: an error when it misspells a known one, else ignored
        for `reason` (LiteLLM has many keys turnout has no use for)."""
        meant = misspelling(key, known)
        if meant is None:
            self.ignore(path, reason)
        else:
            self.errors.append(
                ConfigError(f"unknown key {key!r}: did you mean {meant!r}?", path=path)
            )

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Record a `ConfigError` and go on, so that one pass reports every problem."""
        try:
            yield
        except ConfigError as error:
            self.errors.append(error)
