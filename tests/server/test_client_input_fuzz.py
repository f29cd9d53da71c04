"""Random and mutated requests against the real gateway: no client input earns a 5xx.

Hypothesis builds bodies (valid requests with fields replaced by arbitrary JSON, byte-level
mutations of valid bodies, arbitrary bytes) and headers (the ones the gateway reads, with
arbitrary bytes), and sends them over HTTP on loopback to a gateway in front of a simulated
deployment and a fake OpenAI upstream. Every answer must be below 500, and every error must be
in OpenAI's shape.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_harness import gateway_config, simulated, threaded_gateway
from turnout import Deployment, Secret
from turnout.config.server import GatewayConfig

PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/metrics"]
MODELS = ["chat", "up", "embed", "missing", ""]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant", "tool", "x"]) | json_values},
        optional={"content": st.text(max_size=30) | json_values, "tool_calls": json_values},
    ),
    max_size=3,
)
fields = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS) | json_values},
    optional={
        "messages": messages | json_values,
        "prompt": st.text(max_size=20) | json_values,
        "input": st.lists(st.text(max_size=10), max_size=3) | json_values,
        "stream": st.booleans() | json_values,
        "stream_options": json_values,
        "max_tokens": st.integers(-5, 10**12) | json_values,
        "n": st.integers(-2, 5) | json_values,
        "temperature": json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "metadata": json_values,
        "tags": st.lists(st.text(max_size=6), max_size=3) | json_values,
        "response_format": json_values,
    },
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    valid = msgspec.json.encode(draw(fields))
    how = draw(st.sampled_from(["fields", "mutated", "bytes"]))
    if how == "fields":
        return valid
    if how == "bytes":
        return draw(st.binary(max_size=200))
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "drop", "insert"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "drop":
            del data[at]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


header_names = st.sampled_from(
    [
        "authorization",
        "api-key",
        "x-api-key",
        "x-turnout-tags",
        "x-turnout-timeout-ms",
        "x-stainless-read-timeout",
        "content-type",
        "content-encoding",
        "expect",
        "accept-encoding",
    ]
)
# Header values as raw bytes, without the CR/LF that would end the header early.
header_values = st.binary(max_size=24).map(
    lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"").strip()
)


def _config(fake_url: str) -> GatewayConfig:
    return gateway_config(
        simulated("chat-sim"),
        simulated("embed-sim", group="embed", embedding_dimensions=4),
        Deployment(
            model_name="up",
            provider="openai-compatible",
            model="gpt-4o-mini",
            id="up",
            base_url=fake_url,
            api_key=Secret("sk-fake"),
        ),
        max_body_bytes=64 * 1024,
    )


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    """A fake OpenAI upstream and the gateway, served from a thread with its own loop."""
    with threaded_gateway(_config) as url:
        yield url


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(PATHS),
    body=bodies(),
    headers=st.dictionaries(header_names, header_values, max_size=3),
)
def test_no_client_input_gets_a_server_error(
    gateway_url: str, path: str, body: bytes, headers: dict[str, bytes]
) -> None:
    address = urlsplit(gateway_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        connection.putrequest("POST" if path.startswith("/v1/c") or "emb" in path else "GET", path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("content-length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    assert response.status < 500, (response.status, answer[:300])
    if response.status >= 400:
        error: Any = msgspec.json.decode(answer)["error"]
        assert set(error) == {"message", "type", "param", "code"}
