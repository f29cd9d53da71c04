"""When tracing is on, decided from the standard OpenTelemetry environment, and what happens
when the environment asks for it without the extra installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from turnout.observe.tracing import (
    content_capture_requested,
    metrics_export_requested,
    tracing_requested,
)


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
            False,
        ),
        ({"OTEL_SERVICE_NAME": "gateway"}, False),
    ],
)
def test_tracing_is_on_only_when_the_environment_names_an_export(
    env: dict[str, str], on: bool
) -> None:
    assert tracing_requested(env) is on


@pytest.mark.parametrize(
    ("env", "exported"),
    [
        ({}, False),
        # An endpoint alone exports traces: the GenAI metrics stay on /metrics only.
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:4318/v1/metrics"}, False),
        ({"OTEL_METRICS_EXPORTER": "none"}, False),
        ({"OTEL_METRICS_EXPORTER": "otlp"}, True),
        ({"OTEL_METRICS_EXPORTER": " OTLP "}, True),
    ],
)
def test_metrics_go_out_over_otlp_only_when_asked_by_name(
    env: dict[str, str], exported: bool
) -> None:
    assert metrics_export_requested(env) is exported


@pytest.mark.parametrize(
    ("value", "captured"),
    [
        (None, False),
        ("NO_CONTENT", False),
        ("EVENT_ONLY", False),
        ("SPAN_ONLY", True),
        ("span_and_event", True),
        ("true", True),
    ],
)
def test_content_is_captured_only_when_asked(value: str | None, captured: bool) -> None:
    env = {} if value is None else {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": value}
    assert content_capture_requested(env) is captured


def test_tracing_asked_for_without_the_extra_warns_once_and_serves_on() -> None:
    program = (
        "import logging, sys\n"
        "sys.modules['opentelemetry'] = None\n"  # as if the extra were not installed
        "logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')\n"
        "from turnout.observe.tracing import start_tracing\n"
        "print(start_tracing({'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://127.0.0.1:9'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
    [warning] = done.stderr.strip().splitlines()
    assert warning.startswith("WARNING ")
    assert "install turnout[otel]" in warning
