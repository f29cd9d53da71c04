"""What a provider's model can do, so that routing can ask before sending.

Each adapter declares, per model-name prefix, the request parameters its provider cannot honour
(`Capabilities.unsupported`); a parameter the adapter honours by translation (JSON mode on
Anthropic through a forced tool, ``n`` on Gemini as ``candidateCount``) is honoured. The router's
pre-filter (`turnout.router.filters`) reads `needs_of` for the request and skips a deployment
that lacks one of its needs, so a mixed group answers every request from a deployment that can,
and a request nothing can honour gets a 400 naming the parameter before anything is sent.

A parameter at its neutral value (``n: 1``, ``logprobs: false``, ``seed`` absent, an empty
``logit_bias``) needs nothing, and a deployment with ``drop_params`` accepts every parameter (it
drops what it cannot send).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from turnout.config.router import CAPABILITY_PARAMS, Deployment


class Feature(StrEnum):
    """A request parameter (at a value that asks for something) some providers cannot honour."""

    #: ``n`` > 1: several choices.
    N = "n"
    #: ``logprobs: true`` or ``top_logprobs`` > 0.
    LOGPROBS = "logprobs"
    SEED = "seed"
    #: ``metadata`` with keys besides ``user_id``.
    METADATA = "metadata"
    #: ``metadata`` holding only ``user_id`` (Anthropic's own metadata carries it).
    METADATA_USER_ID = "metadata.user_id"
    #: ``response_format: {"type": "json_object"}``.
    JSON_OBJECT = "response_format.json_object"
    #: ``response_format: {"type": "json_schema", ...}``.
    JSON_SCHEMA = "response_format.json_schema"
    #: A non-empty ``logit_bias``.
    LOGIT_BIAS = "logit_bias"
    #: A non-zero ``presence_penalty`` or ``frequency_penalty``.
    PENALTIES = "penalties"
    #: ``parallel_tool_calls: false``.
    SERIAL_TOOL_CALLS = "parallel_tool_calls"
    #: A non-empty ``tools`` list.
    TOOLS = "tools"

    @property
    def param(self) -> str:
        """The request parameter a 400 names."""
        return _PARAMS.get(self, self.value)

    @property
    def described(self) -> str:
        """The feature in words, for an error message."""
        return _DESCRIBED[self]


_PARAMS = {
    Feature.METADATA_USER_ID: "metadata",
    Feature.JSON_OBJECT: "response_format",
    Feature.JSON_SCHEMA: "response_format",
    Feature.PENALTIES: "presence_penalty",
}
_DESCRIBED = {
    Feature.N: "several choices (`n` > 1)",
    Feature.LOGPROBS: "log probabilities (`logprobs`/`top_logprobs`)",
    Feature.SEED: "a sampling seed (`seed`)",
    Feature.METADATA: "`metadata` beyond `user_id`",
    Feature.METADATA_USER_ID: "`metadata`",
    Feature.JSON_OBJECT: "JSON mode (`response_format` json_object)",
    Feature.JSON_SCHEMA: "structured output (`response_format` json_schema)",
    Feature.LOGIT_BIAS: "`logit_bias`",
    Feature.PENALTIES: "`presence_penalty`/`frequency_penalty`",
    Feature.SERIAL_TOOL_CALLS: "`parallel_tool_calls: false`",
    Feature.TOOLS: "tools (`tools`)",
}
_NONE: frozenset[Feature] = frozenset()
#: The request fields `needs_of` looks at; a body with none of them needs nothing.
_FIELDS = frozenset(name.partition(".")[0] for name in CAPABILITY_PARAMS)
#: Every feature: what a deployment with ``drop_params`` may be asked for.
ALL_FEATURES = frozenset(Feature)


def needs_of(body: Mapping[str, Any]) -> frozenset[Feature]:
    """The features an OpenAI-shaped request body asks for.

    One set test for the common request that uses none of them; the values are read only when
    one of the fields is present.
    """
    if body.keys().isdisjoint(_FIELDS):
        return _NONE
    get = body.get
    found: set[Feature] = set()
    n = get("n")
    if isinstance(n, int) and n > 1:
        found.add(Feature.N)
    top = get("top_logprobs")
    if get("logprobs") is True or (isinstance(top, int | float) and top > 0):
        found.add(Feature.LOGPROBS)
    if get("seed") is not None:
        found.add(Feature.SEED)
    metadata = get("metadata")
    if isinstance(metadata, Mapping) and metadata:
        found.add(Feature.METADATA_USER_ID if metadata.keys() == {"user_id"} else Feature.METADATA)
    response_format = get("response_format")
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "json_object":
        found.add(Feature.JSON_OBJECT)
    elif kind == "json_schema":
        found.add(Feature.JSON_SCHEMA)
    if get("logit_bias"):
        found.add(Feature.LOGIT_BIAS)
    if get("presence_penalty") or get("frequency_penalty"):
        found.add(Feature.PENALTIES)
    if get("parallel_tool_calls") is False and get("tools"):
        found.add(Feature.SERIAL_TOOL_CALLS)
    if get("tools"):
        found.add(Feature.TOOLS)
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class Capabilities:
    tools: bool = True
    vision: bool = False
    #: Continuing from a partial assistant message given as the last message.
    assistant_prefill: bool = False
    embeddings: bool = False
    streaming: bool = True
    #: Request features the model cannot honour, even by translation.
    unsupported: frozenset[Feature] = _NONE

    @property
    def json_mode(self) -> bool:
        """``response_format: {"type": "json_object"}`` (or an equivalent the adapter maps to)."""
        return Feature.JSON_OBJECT not in self.unsupported

    def lacking(self) -> frozenset[Feature]:
        """Every feature the model cannot honour, tools included."""
        return self.unsupported if self.tools else self.unsupported | {Feature.TOOLS}


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


def declared(provider: object, deployment: Deployment) -> Capabilities:
    """What a provider declares for a deployment (a provider that declares nothing: defaults)."""
    ask = getattr(provider, "capabilities", None)
    found = ask(deployment) if ask is not None else None
    return found if isinstance(found, Capabilities) else Capabilities()


#: What each name a deployment's ``unsupported_params``/``supported_params`` may use
#: (`turnout.config.router.CAPABILITY_PARAMS`) stands for.
PARAM_FEATURES: dict[str, frozenset[Feature]] = {
    "n": frozenset({Feature.N}),
    "logprobs": frozenset({Feature.LOGPROBS}),
    "top_logprobs": frozenset({Feature.LOGPROBS}),
    "seed": frozenset({Feature.SEED}),
    "metadata": frozenset({Feature.METADATA, Feature.METADATA_USER_ID}),
    "response_format": frozenset({Feature.JSON_OBJECT, Feature.JSON_SCHEMA}),
    "response_format.json_object": frozenset({Feature.JSON_OBJECT}),
    "response_format.json_schema": frozenset({Feature.JSON_SCHEMA}),
    "logit_bias": frozenset({Feature.LOGIT_BIAS}),
    "presence_penalty": frozenset({Feature.PENALTIES}),
    "frequency_penalty": frozenset({Feature.PENALTIES}),
    "parallel_tool_calls": frozenset({Feature.SERIAL_TOOL_CALLS}),
    "tools": frozenset({Feature.TOOLS}),
}


def _features(names: frozenset[str]) -> frozenset[Feature]:
    return frozenset().union(*(PARAM_FEATURES[name] for name in names)) if names else _NONE


class Lacking(NamedTuple):
    """What one deployment cannot honour, and whether it drops it (``drop_params``) rather
    than refuse."""

    features: frozenset[Feature]
    dropped: bool


def lacked_by(provider: object, deployment: Deployment) -> frozenset[Feature]:
    """The features a deployment cannot honour: what its provider declares for the model, with
    the deployment's own `unsupported_params` added and `supported_params` taken away.

    With ``drop_params`` the deployment accepts them all the same (it drops them); the router
    then prefers a deployment of the group that honours them, and takes this one only when no
    such deployment is available (`turnout.router.filters`).
    """
    return lacking_of(declared(provider, deployment), deployment)


def lacking_of(capabilities: Capabilities, deployment: Deployment) -> frozenset[Feature]:
    """`lacked_by`, from the capabilities an adapter declares for the deployment's model."""
    lacking = capabilities.lacking() | _features(deployment.unsupported_params)
    return lacking - _features(deployment.supported_params)


#: The request fields that ask for each feature: what dropping the feature removes.
_FEATURE_FIELDS: dict[Feature, tuple[str, ...]] = {
    Feature.N: ("n",),
    Feature.LOGPROBS: ("logprobs", "top_logprobs"),
    Feature.SEED: ("seed",),
    Feature.METADATA: ("metadata",),
    Feature.METADATA_USER_ID: ("metadata",),
    Feature.JSON_OBJECT: ("response_format",),
    Feature.JSON_SCHEMA: ("response_format",),
    Feature.LOGIT_BIAS: ("logit_bias",),
    Feature.PENALTIES: ("presence_penalty", "frequency_penalty"),
    Feature.SERIAL_TOOL_CALLS: ("parallel_tool_calls",),
    Feature.TOOLS: ("tools", "tool_choice", "parallel_tool_calls"),
}


def drop_lacking(body: dict[str, Any], lacking: frozenset[Feature]) -> None:
    """Remove from an OpenAI-shaped `body` the fields of each feature it asks for that the
    deployment lacks (``drop_params``, LiteLLM's meaning): the upstream would refuse them.

    Adapters that translate (Anthropic, Gemini, Bedrock) drop while translating; this is for
    those that pass the caller's body through. It runs for each attempt with the attempt's
    deployment, so a request that fails over keeps, on a deployment that honours them, the
    fields another dropped.
    """
    if not lacking:
        return
    for feature in needs_of(body) & lacking:
        for name in _FEATURE_FIELDS[feature]:
            body.pop(name, None)
