"""What a provider's model can do, so that routing and later features can ask before sending."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Capabilities:
    tools: bool = True
    vision: bool = False
    #: ``response_format: {"type": "json_object"}`` (or an equivalent the adapter maps to).
    json_mode: bool = False
    #: Continuing from a partial assistant message given as the last message.
    assistant_prefill: bool = False
    embeddings: bool = False
    streaming: bool = True


class Capable:
    """Mixed into adapters: capabilities by model-name prefix, the longest match winning."""

    __slots__ = ()

    #: (model-name prefix, capabilities); "" matches every model.
    CAPABILITIES: tuple[tuple[str, Capabilities], ...] = (("", Capabilities()),)

    def capabilities(self, model: str) -> Capabilities:
        best = ("", Capabilities())
        for prefix, capabilities in self.CAPABILITIES:
            if model.startswith(prefix) and len(prefix) >= len(best[0]):
                best = (prefix, capabilities)
        return best[1]
