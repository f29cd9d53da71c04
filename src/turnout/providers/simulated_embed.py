"""Simulated embeddings: a unit vector per input, as OpenAI's embeddings endpoint answers.

Inputs come as OpenAI accepts them: a string, an array of strings, an array of token ids, or
an array of such arrays. Each embeds to a unit vector that depends only on the input, so equal
inputs embed equally across calls and runs. ``dimensions`` shortens the vectors (to at most the
deployment's ``embedding_dimensions``, the model's native size) and they stay normalised, as
OpenAI's shortened embeddings are; ``encoding_format: base64`` packs them as little-endian
32-bit floats.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Mapping
from typing import Any, TypeGuard

from turnout.config.router import Deployment
from turnout.providers.simulated_params import ParameterRejectedError, number
from turnout.wire import Usage

#: Most inputs one request may embed, as OpenAI allows.
MOST_INPUTS = 2048


def embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    """Each input as the text its vector is derived from (token ids written out)."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if _tokens(value):
        return [_token_text(value)]
    if isinstance(value, list) and value and len(value) <= MOST_INPUTS:
        if all(isinstance(item, str) for item in value):
            return list(value)
        if all(_tokens(item) for item in value):
            return [_token_text(item) for item in value]
    raise ParameterRejectedError(
        "'input' must be a string, an array of strings, an array of token ids or an array "
        f"of arrays of token ids, with at most {MOST_INPUTS} entries",
        param="input",
        code="invalid_type",
    )


def dimensions_of(body: Mapping[str, Any], native: int) -> int:
    """The vector length asked for (``dimensions``), or the model's own."""
    asked = number(body, "dimensions", 1, native, integer=True)
    return native if asked is None else int(asked)


def check_encoding(body: Mapping[str, Any]) -> None:
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise ParameterRejectedError(
            f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )


def embeddings_body(
    body: Mapping[str, Any],
    inputs: list[str],
    dimensions: int,
    deployment: Deployment,
    usage: Usage,
) -> dict[str, Any]:
    packed = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        vector = embedding(text, dimensions)
        shown: Any = _base64(vector) if packed else vector
        data.append({"object": "embedding", "index": index, "embedding": shown})
    return {
        "object": "list",
        "data": data,
        "model": deployment.model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens},
    }


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on ``text``: equal inputs embed equally, across runs."""
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        values.extend(
            int.from_bytes(digest[i : i + 2], "big") / 32767.5 - 1.0 for i in range(0, 32, 2)
        )
        block += 1
    del values[dimensions:]
    norm = math.sqrt(sum(value * value for value in values))
    if norm == 0:
        return [1.0] + [0.0] * (dimensions - 1)
    return [value / norm for value in values]


def _base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _tokens(value: Any) -> TypeGuard[list[int]]:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(item, int) and not isinstance(item, bool) and item >= 0 for item in value
        )
    )


def _token_text(tokens: list[int]) -> str:
    return "tokens:" + ",".join(map(str, tokens))
