"""The samplers decided without the SDK's objects decide as the SDK's objects do."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import sampling
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from turnout.observe.lean_spans import LeanSpan, LeanTracer
from turnout.observe.span_records import SpanRecord


class Kept:
    def __init__(self) -> None:
        self.records: list[SpanRecord] = []

    def submit(self, record: SpanRecord) -> None:
        self.records.append(record)

    def force_flush(self, timeout: float | None = None) -> bool:
        return True

    def shutdown(self) -> None:
        pass


def _parent(sampled: bool) -> SpanContext:
    return SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0),
        trace_state=TraceState([("vendor", "value")]),
    )


@pytest.mark.parametrize(
    ("sampler", "parent_sampled", "recorded"),
    [
        (sampling.DEFAULT_ON, None, True),
        (sampling.DEFAULT_ON, True, True),
        (sampling.DEFAULT_ON, False, False),
        (sampling.ALWAYS_ON, False, True),
        (sampling.ALWAYS_OFF, True, False),
        (sampling.DEFAULT_OFF, True, True),
        (sampling.DEFAULT_OFF, None, False),
        (sampling.ParentBased(sampling.TraceIdRatioBased(1.0)), False, False),
    ],
)
def test_a_span_is_sampled_as_the_sdk_sampler_decides(
    sampler: sampling.Sampler, parent_sampled: bool | None, recorded: bool
) -> None:
    kept = Kept()
    tracer = LeanTracer(kept, sampler)
    context = None
    if parent_sampled is not None:
        parent = _parent(parent_sampled)
        context = trace.set_span_in_context(NonRecordingSpan(parent))
        expected = sampler.should_sample(context, parent.trace_id, "chat m")
    else:
        expected = sampler.should_sample(None, 1, "chat m")
    # The table matches the SDK itself.
    assert (expected.decision is sampling.Decision.RECORD_AND_SAMPLE) == recorded
    span = tracer.start_span("chat m", context=context, attributes={"gen_ai.request.model": "m"})
    assert isinstance(span, LeanSpan) == recorded
    assert span.get_span_context().trace_flags.sampled == recorded
    span.end()
    assert len(kept.records) == (1 if recorded else 0)
    if parent_sampled is not None:
        # A child keeps its parent's trace and trace state, sampled or not.
        assert span.get_span_context().trace_id == _parent(True).trace_id
        assert span.get_span_context().trace_state == _parent(True).trace_state
    if recorded:
        assert kept.records[0].attributes["gen_ai.request.model"] == "m"
