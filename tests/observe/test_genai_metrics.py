"""The GenAI client histograms on /metrics: names, units, buckets and bounded labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from turnout.errors import FailureKind
from turnout.observe.events import AttemptFinished
from turnout.observe.genai_names import DURATION_BUCKETS, TOKEN_BUCKETS
from turnout.observe.metrics import GatewayMetrics
from turnout.wire import Usage


def _attempt(
    error: FailureKind | None = None, *, ttft: float | None = None, usage: Usage | None = None
) -> AttemptFinished:
    return AttemptFinished(
        "r",
        "chat",
        "d1",
        1,
        0.0,
        0.3,
        error,
        None if error is None else 502,
        usage,
        None,
        ttft,
        ttft is not None,
        provider="azure",
        upstream_model="gpt-4o",
        operation="chat",
        server_address="example.openai.azure.com",
        server_port=443,
        response_model="gpt-4o-2024-08-06",
    )


def _samples(metrics: GatewayMetrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    body, _ = metrics.render()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_each_attempt_is_one_observation_with_the_conventions_labels() -> None:
    metrics = GatewayMetrics()
    metrics.on_event(_attempt(ttft=0.05, usage=Usage(120, 30)))
    metrics.on_event(_attempt(FailureKind.SERVER_ERROR))
    samples = _samples(metrics)
    counts = {
        labels["error_type"]: value
        for labels, value in samples["gen_ai_client_operation_duration_seconds_count"]
    }
    assert counts == {"": 1.0, "server_error": 1.0}
    [(labels, _)] = samples["gen_ai_client_operation_time_to_first_chunk_seconds_count"]
    assert labels == {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "azure.ai.openai",
        "gen_ai_request_model": "gpt-4o",
        "server_address": "example.openai.azure.com",
        "server_port": "443",
        "error_type": "",
    }
    tokens = {
        labels["gen_ai_token_type"]: value
        for labels, value in samples["gen_ai_client_token_usage_sum"]
        if labels["error_type"] == ""
    }
    assert tokens == {"input": 120.0, "output": 30.0}
    # The upstream's own model name is no label here: it is the upstream's text.
    assert all(
        "gen_ai_response_model" not in labels
        for labels, _ in samples["gen_ai_client_token_usage_sum"]
    )


def test_the_buckets_are_the_conventions_advice() -> None:
    metrics = GatewayMetrics()
    metrics.on_event(_attempt(ttft=0.05, usage=Usage(3, 5)))
    samples = _samples(metrics)

    def bounds(name: str) -> list[float]:
        return sorted(
            float(labels["le"])
            for labels, _ in samples[name]
            if labels.get("le") not in (None, "+Inf")
            and labels.get("gen_ai_token_type", "input") == "input"
        )

    assert bounds("gen_ai_client_operation_duration_seconds_bucket") == list(DURATION_BUCKETS)
    assert bounds("gen_ai_client_operation_time_to_first_chunk_seconds_bucket") == list(
        DURATION_BUCKETS
    )
    assert bounds("gen_ai_client_token_usage_bucket") == [float(b) for b in TOKEN_BUCKETS]
