"""The GenAI client metrics of the OpenTelemetry conventions (v1.41), on ``/metrics``.

``gen_ai_client_operation_duration_seconds``, ``gen_ai_client_token_usage`` (by
``gen_ai_token_type``: input, output) and ``gen_ai_client_operation_time_to_first_chunk_seconds``,
one observation per upstream attempt, with the conventions' bucket boundaries. They are always
there, beside turnout's own series, whether or not traces are exported, and they go through the
gateway's `Series`, so several workers add up like every other histogram.

Labels are names the configuration chose and turnout's own enums: the operation, the provider,
the model the deployment asks its provider for, the host and port of its configured base URL and
the failure kind. The model an upstream says answered (``gen_ai.response.model``) is left to the
OpenTelemetry metrics and spans: it is the upstream's text, and an unbounded label here.
"""

from __future__ import annotations

from turnout.observe.events import AttemptFinished
from turnout.observe.genai_names import (
    DURATION_BUCKETS,
    TOKEN_BUCKETS,
    operation_name,
    provider_name,
)
from turnout.observe.series import Buckets, Histogram, Series

_LABELS = (
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "server_address",
    "server_port",
    "error_type",
)


class _Children:
    """The histograms of one label tuple."""

    __slots__ = ("duration", "input", "labels", "output", "ttft")

    def __init__(self, series: GenAiSeries, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.duration = series.duration.labels(*labels)
        self.input = series.tokens.labels(*labels, "input")
        self.output = series.tokens.labels(*labels, "output")
        self.ttft: Buckets | None = None


class GenAiSeries:
    """The three GenAI histograms in a gateway's registry; fed each `AttemptFinished`."""

    __slots__ = ("_children", "duration", "tokens", "ttft")

    def __init__(self, registry: Series) -> None:
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "GenAI operation duration: one upstream attempt, failed ones included.",
            _LABELS,
            registry,
            buckets=DURATION_BUCKETS,
        )
        self.tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per upstream attempt, by gen_ai_token_type (input, output).",
            (*_LABELS, "gen_ai_token_type"),
            registry,
            buckets=TOKEN_BUCKETS,
        )
        self.ttft = Histogram(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time from an upstream attempt's start to its stream's first chunk.",
            _LABELS,
            registry,
            buckets=DURATION_BUCKETS,
        )
        self._children: dict[tuple[object, ...], _Children] = {}

    def observe(self, event: AttemptFinished) -> None:
        error = event.error
        key = (
            event.operation,
            event.provider,
            event.upstream_model,
            event.server_address,
            event.server_port,
            error,
        )
        children = self._children.get(key)
        if children is None:
            labels = (
                operation_name(event.operation),
                provider_name(event.provider),
                event.upstream_model,
                event.server_address or "",
                "" if event.server_port is None else str(event.server_port),
                "" if error is None else error.value,
            )
            children = self._children[key] = _Children(self, labels)
        children.duration.observe(event.duration)
        usage = event.usage
        if usage is not None:
            children.input.observe(usage.prompt_tokens)
            children.output.observe(usage.completion_tokens)
        if event.ttft is not None:
            if children.ttft is None:
                children.ttft = self.ttft.labels(*children.labels)
            children.ttft.observe(event.ttft)
