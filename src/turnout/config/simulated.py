"""What a simulated deployment does: its latency, errors, quotas and broken streams, as data.

`Behaviour` is a provider setting (``params.simulate`` of a deployment of provider
``simulated``), so it is checked when the config is loaded, with the path of a bad field; the
simulated provider (`turnout.providers.simulated`) plays it.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from msgspec import Meta, Struct, field

ErrorKind = Literal[
    "rate_limited",
    "server_error",
    "overloaded",
    "timeout",
    "connection",
    "authentication",
    "not_found",
]
#: The order in which error weights are laid out on the unit interval: fixed, so that the same
#: draw picks the same kind however the mapping happened to be ordered in a config file.
ERROR_KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)

StreamFailure = Literal["none", "cut", "stall", "no_finish"]

_NonNegative = Annotated[float, Meta(ge=0)]
_Fraction = Annotated[float, Meta(ge=0, le=1)]
_Count = Annotated[int, Meta(ge=0)]
_PositiveInt = Annotated[int, Meta(gt=0)]


class Behaviour(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How one simulated deployment (or model) behaves. ``Behaviour()`` is fast and healthy.

    Field ranges are checked when the struct is decoded (``msgspec.convert``, as config loading
    does); like every msgspec struct, building one directly in Python does not check them.
    """

    #: Seconds a whole non-streamed answer takes.
    latency: _NonNegative = 0.0
    #: Extra seconds drawn uniformly from 0..jitter on every call.
    jitter: _NonNegative = 0.0
    #: With this probability a call takes ``tail_latency`` seconds longer (a heavy tail).
    tail_probability: _Fraction = 0.0
    tail_latency: _NonNegative = 0.0
    #: Seconds before a stream's first chunk (None: the same as ``latency``).
    ttft: _NonNegative | None = None
    #: Seconds before each content chunk of a stream.
    chunk_interval: _NonNegative = 0.0
    #: Tokens of each text answer, before the request's max tokens cap it (finish_reason
    #: "length"); JSON answers and tool calls are as long as the caller's schema makes them.
    output_tokens: _Count = 16
    #: Share of calls that fail with an error drawn from ``errors``.
    error_rate: _Fraction = 0.0
    #: Relative weight of each error kind among the failing calls.
    errors: dict[ErrorKind, _NonNegative] = field(default_factory=lambda: {"server_error": 1.0})
    #: Seconds of Retry-After sent with simulated 429s (not with quota 429s, which say the truth).
    retry_after: _NonNegative | None = None
    #: Requests per wall-clock minute this deployment admits; past it, 429 until the next minute.
    rpm_limit: _PositiveInt | None = None
    #: Largest prompt, in (estimated) tokens, accepted.
    context_window: _PositiveInt | None = None
    #: A prompt containing this (case-insensitively) is refused by the content filter.
    blocked_phrase: Annotated[str, Meta(min_length=1)] | None = None
    #: How streams break after they started: not at all; "cut" raises StreamInterruptedError;
    #: "stall" goes silent (for a day on the clock, then raises the same); "no_finish"
    #: ends after the content with no finish_reason (its last chunk still carries the usage).
    stream_failure: StreamFailure = "none"
    #: Content chunks sent before a "cut" or "stall" stream breaks.
    fail_after_chunks: _Count = 0
    #: Seconds a "timeout" error waits before it is raised.
    timeout_after: _NonNegative = 30.0
    #: The length of the model's embeddings: what a request's ``dimensions`` may shorten.
    embedding_dimensions: _PositiveInt = 8

    def __post_init__(self) -> None:
        if self.error_rate > 0 and sum(self.errors.values()) <= 0:
            raise ValueError("errors must give some kind a positive weight when error_rate > 0")
