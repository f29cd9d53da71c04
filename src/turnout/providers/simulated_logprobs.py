"""Log probabilities for simulated tokens, in both of OpenAI's shapes.

Chat answers carry ``logprobs.content``: per token its text, log probability, UTF-8 bytes and
up to twenty ``top_logprobs`` alternatives; (legacy) text completions carry parallel lists
(``tokens``, ``token_logprobs``, ``top_logprobs`` as token-to-logprob maps, ``text_offset``).
The chosen token is always the most likely one, the alternatives strictly less likely, and
every number is drawn from a hash of the answer's seed and the token's position, so the same
answer has the same log probabilities on every run.
"""

from __future__ import annotations

import hashlib
from typing import Any

#: Alternatives offered next to a chosen token, enough for OpenAI's largest ``top_logprobs``.
_ALTERNATIVES = (
    *("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"),
    *("Lorem", "Ipsum", "Dolor", "Sit", "Amet", "the", "and", "of", "to", "a", "in", "is"),
)


class Logprobs:
    """The log probabilities of one choice's tokens; `top` alternatives per token."""

    def __init__(self, seed: str, top: int) -> None:
        self._seed = seed
        self.top = top

    def _draw(self, position: int, token: str) -> int:
        text = f"{self._seed}|{position}|{token}".encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")

    def ranked(self, position: int, token: str, count: int) -> list[tuple[str, float]]:
        """The token and its `count - 1` likeliest alternatives, likeliest first."""
        draw = self._draw(position, token)
        chosen = -round((draw % 3000) / 10_000 + 1e-5, 6)
        lead = token[: len(token) - len(token.lstrip())] or " "
        ranked = [(token, chosen)]
        for rank, word in enumerate((lead + w for w in _ALTERNATIVES if lead + w != token), 1):
            if len(ranked) >= count:
                break
            fraction = ((draw >> (rank % 48)) & 0xFF) / 256
            ranked.append((word, round(chosen - 1.5 * rank - fraction, 6)))
        return ranked

    def chat_entry(self, position: int, token: str) -> dict[str, Any]:
        ranked = self.ranked(position, token, max(1, self.top))
        return {
            **_entry(*ranked[0]),
            "top_logprobs": [_entry(word, value) for word, value in ranked[: self.top]],
        }

    def chat(self, tokens: list[str], start: int = 0) -> dict[str, Any]:
        """A chat choice's ``logprobs`` for `tokens` (the answer's from position `start`)."""
        content = [self.chat_entry(start + i, token) for i, token in enumerate(tokens)]
        return {"content": content, "refusal": None}

    def legacy(self, tokens: list[str], start: int = 0, offset: int = 0) -> dict[str, Any]:
        """A text completion choice's ``logprobs``; `offset`: characters before `tokens`."""
        offsets: list[int] = []
        for token in tokens:
            offsets.append(offset)
            offset += len(token)
        ranked = [self.ranked(start + i, token, self.top + 1) for i, token in enumerate(tokens)]
        return {
            "tokens": list(tokens),
            "token_logprobs": [pairs[0][1] for pairs in ranked],
            "top_logprobs": [dict(pairs[: self.top]) for pairs in ranked],
            "text_offset": offsets,
        }


def _entry(token: str, value: float) -> dict[str, Any]:
    return {"token": token, "logprob": value, "bytes": list(token.encode())}
