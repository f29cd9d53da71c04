"""Whether to trace, decided from the standard OpenTelemetry environment, and the one way in.

Tracing is on when the environment names where to export: ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set, or ``OTEL_TRACES_EXPORTER`` set to anything but
``none``; ``OTEL_SDK_DISABLED=true`` turns it off whatever else is set. Everything else (the
sampler, the service name and resource, the exporter's endpoint, headers, timeout and
compression) is read by the OpenTelemetry SDK from the same environment, as its documentation
describes, so an operator configures turnout like any other instrumented service.

This module imports nothing of OpenTelemetry: the SDK is an optional extra
(``pip install 'turnout[otel]'``) and is loaded only when tracing is asked for, by
`start_tracing`, so a gateway that does not trace pays nothing for it, not even the import.
Tracing asked for without the extra installed is one clear warning, and the gateway serves on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from turnout.observe.otel_setup import Tracing

logger = logging.getLogger("turnout.observe")

#: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` values that put messages on spans.
_CAPTURE_VALUES = frozenset({"span_only", "span_and_event", "true"})


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the OpenTelemetry environment asks for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return True
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return bool(exporter) and exporter != "none"


def metrics_export_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the GenAI metrics go out over OTLP too: only when the environment names OTLP as
    the metrics exporter (``OTEL_METRICS_EXPORTER=otlp``). They are always on ``/metrics``."""
    env = os.environ if environ is None else environ
    return env.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "otlp"


def content_capture_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether message content may go on attempt spans (never unless explicitly asked)."""
    env = os.environ if environ is None else environ
    value = env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return value.strip().lower() in _CAPTURE_VALUES


def start_tracing(environ: Mapping[str, str] | None = None) -> Tracing | None:
    """Tracing as the environment configures it, or None when it is not asked for or the
    ``otel`` extra is missing (then with one warning saying how to install it)."""
    env = os.environ if environ is None else environ
    if not tracing_requested(env):
        return None
    try:
        from turnout.observe.otel_setup import build_tracing
    except ImportError as missing:
        logger.warning(
            "the OpenTelemetry environment asks for traces, but the OpenTelemetry SDK is not "
            "installed (%s): install turnout[otel] to export them; serving without traces",
            missing.name or "opentelemetry",
        )
        return None
    return build_tracing(
        capture_content=content_capture_requested(env),
        export_metrics=metrics_export_requested(env),
    )
