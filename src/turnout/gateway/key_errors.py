"""How a virtual key is refused, in LiteLLM's words so that scripts matching them keep working.

Every refusal is OpenAI's error body with LiteLLM's ``type`` and ``code``: an unknown, deleted,
blocked or expired key is a 401 ``auth_error``; a model the key (or its team) may not use is a 401
``key_model_access_denied`` (``team_model_access_denied``) naming the model, as LiteLLM answers;
a valid virtual key on a master-key route is a 403.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from turnout.errors import FallbackKind, UnauthorizedError


class KeyRefusedError(UnauthorizedError):
    """The presented virtual key may not be used (unknown, deleted, blocked or expired)."""

    openai_type = "auth_error"
    openai_code = "401"
    fallback: ClassVar[FallbackKind | None] = None

    def __init__(self, reason: str) -> None:
        super().__init__(f"Authentication Error, {reason}")


def unknown_key() -> KeyRefusedError:
    return KeyRefusedError(
        "Invalid proxy server token passed. The key is not known: it was never issued, or it "
        "was deleted or regenerated"
    )


class ModelAccessDeniedError(UnauthorizedError):
    """The key (or its team) exists and works, but not for this model."""

    openai_type = "key_model_access_denied"
    openai_code = "401"

    def __init__(self, owner: str, allowed: Sequence[str], model: str) -> None:
        super().__init__(
            f"{owner} not allowed to access model. This {owner} can only access "
            f"models={list(allowed)!r}. Tried to access {model}",
            param="model",
        )


class TeamModelAccessDeniedError(ModelAccessDeniedError):
    openai_type = "team_model_access_denied"


class AdminOnlyError(UnauthorizedError):
    """A virtual key on a route only the master key may call."""

    status = 403
    openai_type = "auth_error"
    openai_code = "403"

    def __init__(self, route: str) -> None:
        super().__init__(
            f"Virtual key is not allowed to call this route. Only the master key may call {route}"
        )
