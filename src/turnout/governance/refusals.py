"""Why the store said no: something that does not exist, or an id already taken."""

from __future__ import annotations


class NotFoundError(LookupError):
    """No key, team, user or budget counter with that id (or it was deleted)."""

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"no {what} {ident!r}")
        self.what = what
        self.ident = ident


class ConflictError(ValueError):
    """The id (or key) to create is taken."""
