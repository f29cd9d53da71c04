"""The GenAI client metrics through OpenTelemetry's metrics API, when tracing is on.

The same three instruments as on ``/metrics`` (`turnout.observe.genai_metrics`), under their
convention names (``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
``gen_ai.client.operation.time_to_first_chunk``), with the conventions' bucket advice and
attributes, the model that answered included. The SDK aggregates in process and its periodic
reader exports from its own thread: recording is a few dictionary operations per attempt.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import Meter

from turnout.observe.events import AttemptFinished, Event
from turnout.observe.genai_names import (
    DURATION_BUCKETS,
    TOKEN_BUCKETS,
    operation_name,
    provider_name,
)


class GenAiMeter:
    """Records each `AttemptFinished` on the GenAI instruments (an `Observer`)."""

    __slots__ = ("_duration", "_tokens", "_ttft")

    def __init__(self, meter: Meter) -> None:
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self._ttft = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed answer.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )

    def on_event(self, event: Event) -> None:
        if type(event) is not AttemptFinished:
            return
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation_name(event.operation),
            "gen_ai.provider.name": provider_name(event.provider),
            "gen_ai.request.model": event.upstream_model,
        }
        if event.response_model is not None:
            attributes["gen_ai.response.model"] = event.response_model
        if event.server_address is not None:
            attributes["server.address"] = event.server_address
            if event.server_port is not None:
                attributes["server.port"] = event.server_port
        if event.error is not None:
            attributes["error.type"] = event.error.value
        self._duration.record(event.duration, attributes)
        usage = event.usage
        if usage is not None:
            self._tokens.record(usage.prompt_tokens, {**attributes, "gen_ai.token.type": "input"})
            self._tokens.record(
                usage.completion_tokens, {**attributes, "gen_ai.token.type": "output"}
            )
        if event.ttft is not None:
            self._ttft.record(event.ttft, attributes)
