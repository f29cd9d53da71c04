"""Lean spans for the hot path: the OpenTelemetry span API over a dict, ended into a record.

The SDK's tracer and spans are general: limits checked and values cleaned on every attribute,
locks, a span processor chain, self-metrics. A gateway span holds a dozen attributes it set
itself and leaves the process as soon as it ends, so turnout's tracer makes spans that carry
their ids, times, attributes, events and status in plain fields and, when they end, hand a
`SpanRecord` to a sink (the pipe to the exporter process, or for tests an SDK span processor).

They are real `opentelemetry.trace.Span` objects: they go into the OpenTelemetry context like
any other span, so a library caller's own span (from any tracer) is the parent of turnout's
spans, and turnout's spans are the parent of anything that runs inside them. Sampling is the
SDK's: the sampler the environment names (``OTEL_TRACES_SAMPLER``) decides each span, and an
unsampled span is the API's `NonRecordingSpan`, which propagates its context and records
nothing. Ids are random, with the W3C random-trace-id flag as the SDK sets it.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import sampling
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util import types

from turnout.observe.span_records import Attributes, SpanRecord

_SAMPLED = TraceFlags.SAMPLED
_RANDOM = TraceFlags.RANDOM_TRACE_ID
_UNSET = StatusCode.UNSET.value
_ERROR = StatusCode.ERROR.value
_OK = StatusCode.OK.value
#: Every combination of the two flags a span carries, made once: not a new object per span.
_FLAGS = [TraceFlags(bits) for bits in range((_SAMPLED | _RANDOM) + 1)]


class SpanSink(Protocol):
    """Where ended spans go."""

    def submit(self, record: SpanRecord) -> None: ...

    def force_flush(self, timeout: float | None = None) -> bool: ...

    def shutdown(self) -> None: ...


class LeanSpan(Span):
    """A recording span of turnout's tracer."""

    __slots__ = (
        "_attributes",
        "_context",
        "_description",
        "_end",
        "_events",
        "_flags",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_sink",
        "_span_id",
        "_start",
        "_status",
        "_trace_id",
    )

    def __init__(
        self,
        sink: SpanSink,
        context: SpanContext,
        ids: tuple[int, int, int],
        parent: SpanContext | None,
        name: str,
        kind: SpanKind,
        attributes: Attributes,
        links: list[tuple[bytes, int, int, Attributes]],
        start_time: int,
    ) -> None:
        self._sink = sink
        self._context = context
        # Its trace id, span id and flags as plain ints (the span context's are properties).
        self._trace_id, self._span_id, self._flags = ids
        self._parent = parent
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._events: list[tuple[str, int, Attributes]] = []
        self._links = links
        self._start = start_time
        self._end = 0
        self._status = _UNSET
        self._description: str | None = None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return not self._end

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if not self._end and value is not None:
            self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if not self._end:
            for key, value in attributes.items():
                if value is not None:
                    self._attributes[key] = value

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if not self._end:
            found = dict(attributes) if attributes else {}
            self._events.append((name, timestamp or time.time_ns(), found))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if not self._end and context.is_valid:
            self._links.append(_link(context, attributes))

    def update_name(self, name: str) -> None:
        if not self._end:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK does: OK is final, and only an error keeps a description.
        if self._end or self._status == _OK:
            return
        if isinstance(status, Status):
            code, description = status.status_code, status.description
        else:
            code = status
        self._status = code.value
        self._description = description if code is StatusCode.ERROR else None

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        found: dict[str, Any] = {
            "exception.type": kind.__qualname__
            if module in ("builtins", "")
            else f"{module}.{kind.__qualname__}",
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            found.update(attributes)
        self.add_event("exception", found, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end:
            return
        self._end = end_time or time.time_ns()
        flags = self._flags
        if not flags & _SAMPLED:
            return  # recorded for samplers that ask only that, never exported
        parent = self._parent
        state = self._context.trace_state
        self._sink.submit(
            SpanRecord(
                self._trace_id.to_bytes(16, "big"),
                self._span_id,
                flags,
                state.to_header() if state else "",
                0 if parent is None else parent.span_id,
                False if parent is None else parent.is_remote,
                self._name,
                self._kind.value,
                self._start,
                self._end,
                self._attributes,
                self._events,
                self._status,
                self._description,
                self._links,
            )
        )


class Decided(NamedTuple):
    """A span's start, as `LeanTracer.decide` settles it."""

    trace_id: int
    span_id: int
    #: W3C trace flags: sampled (exported) and random trace id.
    flags: int
    state: TraceState | None
    #: The parent span's context (None for a root span).
    parent: SpanContext | None
    #: The attributes it starts with; None when it does not record.
    attributes: Attributes | None

    @property
    def sampled(self) -> bool:
        return bool(self.flags & _SAMPLED)


class LeanTracer:
    """Starts `LeanSpan`s, sampled by `sampler`, ended into `sink`."""

    __slots__ = ("_always", "_parent_based", "sampler", "sink")

    def __init__(self, sink: SpanSink, sampler: Sampler) -> None:
        self.sink = sink
        self.sampler = sampler
        # The two samplers nearly every deployment runs (the default, parent-based always-on,
        # and always-on) are decided here as the SDK's would decide them: asking the SDK's
        # objects costs several microseconds a span, on every request.
        self._always = sampler is sampling.ALWAYS_ON
        self._parent_based = sampler is sampling.DEFAULT_ON

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
    ) -> Span:
        """A span, the child of the span current in `context` (or in the current context)."""
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        return self.start_child(
            name,
            parent,
            kind,
            dict(attributes) if attributes else {},
            links=links,
            context=context,
            start_time=start_time,
        )

    def start_child(
        self,
        name: str,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Attributes,
        *,
        links: Sequence[Link] | None = None,
        context: Context | None = None,
        start_time: int | None = None,
    ) -> Span:
        """`start_span` for turnout's own callers, which know the parent span's context and
        hand over a fresh dict of `attributes` the span may keep: two lookups and a copy fewer,
        on every request. `context` is only for a sampler other than the two decided here."""
        decided = self.decide(name, parent, kind, attributes, links=links, context=context)
        span_context = SpanContext(
            decided.trace_id,
            decided.span_id,
            is_remote=False,
            trace_flags=_FLAGS[decided.flags],
            trace_state=decided.state,
        )
        if decided.attributes is None:
            return NonRecordingSpan(span_context)
        return LeanSpan(
            self.sink,
            span_context,
            (decided.trace_id, decided.span_id, decided.flags),
            decided.parent,
            name,
            kind,
            decided.attributes,
            [_link(link.context, link.attributes) for link in links] if links else [],
            start_time or time.time_ns(),
        )

    def decide(
        self,
        name: str,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Attributes,
        *,
        links: Sequence[Link] | None = None,
        context: Context | None = None,
    ) -> Decided:
        """A new span's ids, flags and trace state, and whether it records (with which
        attributes), as the sampler decides: what `start_child` makes a span of, and what a
        caller that keeps a span as plain values (`turnout.observe.trace_spans`) starts from."""
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
            flags = parent.trace_flags & _RANDOM
        else:
            parent = None
            trace_id = random.getrandbits(128) or 1
            flags = _RANDOM
        given: Attributes | None
        if self._always or (
            self._parent_based and (parent is None or parent.trace_flags & _SAMPLED)
        ):
            # Sampled, with the parent's trace state and the attributes given, as the SDK's
            # static and parent-based samplers answer.
            flags |= _SAMPLED
            state = parent.trace_state if parent is not None else None
            given = attributes
        elif self._parent_based:
            state, given = parent.trace_state if parent is not None else None, None
        else:
            result = self.sampler.should_sample(
                context, trace_id, name, kind, attributes or None, links
            )
            if result.decision is Decision.RECORD_AND_SAMPLE:
                flags |= _SAMPLED
            state = result.trace_state
            given = None
            if result.decision is not Decision.DROP:
                given = dict(result.attributes) if result.attributes else {}
        return Decided(trace_id, random.getrandbits(64) or 1, flags, state, parent, given)

    @contextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        *,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        """A span current while the block runs, ended when it leaves (errors recorded)."""
        span = self.start_span(name, context, kind, attributes)
        with trace.use_span(span, end_on_exit=end_on_exit) as current:
            yield current


def _link(context: SpanContext, attributes: types.Attributes) -> tuple[bytes, int, int, Attributes]:
    return (
        context.trace_id.to_bytes(16, "big"),
        context.span_id,
        int(context.trace_flags),
        dict(attributes) if attributes else {},
    )
