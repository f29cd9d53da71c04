"""Whatever a client sends, the gateway answers 4xx in OpenAI's error shape, never 5xx, never
echoes the raw input back, and logs at most one line at INFO or below (no traceback).

The gateway runs as a real `turnout serve` process with its default settings, in front of the
fake OpenAI upstream (its own process); the probes are raw bytes on a socket, `http.client` for the
hypothesis runs, and the official SDK. Its stderr is the log that is checked.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from probe_kit import (
    ServedProcess,
    assert_quiet_lines,
    chat_body,
    fake_openai_process,
    http_request,
    openai_error,
    raw_exchange,
    turnout_serve,
    write_config,
)

MASTER_KEY = "sk-master-probe-7Kq2"
CHAT = "/v1/chat/completions"
#: A string placed in malformed input: it must not come back in the answer.
MARKER = "zq9probe7marker"
#: Levels of nesting in the deep-JSON probes (about 2 kB of brackets).
DEPTH = 1000


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServedProcess]:
    with fake_openai_process() as process:
        yield process


@pytest.fixture(scope="module")
def gateway(
    upstream: ServedProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    """A gateway with no master key and default settings."""
    config = write_config(tmp_path_factory.mktemp("open") / "turnout.yaml", upstream.url)
    with turnout_serve(config) as process:
        yield process


@pytest.fixture(scope="module")
def fuzzed_gateway(
    upstream: ServedProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    """A gateway of its own for the generated bodies, so that its log is theirs alone."""
    config = write_config(tmp_path_factory.mktemp("fuzzed") / "turnout.yaml", upstream.url)
    with turnout_serve(config) as process:
        yield process


@pytest.fixture(scope="module")
def keyed_gateway(
    upstream: ServedProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedProcess]:
    """A gateway with a master key and otherwise default settings."""
    path = tmp_path_factory.mktemp("keyed") / "turnout.yaml"
    config = write_config(path, upstream.url, server={"master_key": MASTER_KEY})
    with turnout_serve(config) as process:
        yield process


def _client_error(status: int, body: bytes, *, allowed: tuple[int, ...] = ()) -> dict[str, Any]:
    """A client's fault: a 4xx (one of `allowed` when given) with OpenAI's error body."""
    assert 400 <= status < 500, f"status {status} for client input: {body[:500]!r}"
    if allowed:
        assert status in allowed, f"status {status}, expected one of {allowed}: {body[:500]!r}"
    error = openai_error(body)
    assert MARKER not in json.dumps(error), f"the raw input came back: {body[:500]!r}"
    return error


# ---- deep nesting --------------------------------------------------------------------------


#: Stands for the deep value in the bodies below; replaced in their JSON text.
DEEP = "@deep@"
DEEP_LISTS = "[" * DEPTH + '"deep"' + "]" * DEPTH
DEEP_OBJECTS = '{"a":' * DEPTH + '"deep"' + "}" * DEPTH

DEEP_BODIES: dict[str, tuple[dict[str, Any], str]] = {
    "messages": (
        {"model": "chat", "messages": [{"role": "user", "content": DEEP}]},
        DEEP_LISTS,
    ),
    "tools": (
        {
            "model": "chat",
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": DEEP}}],
        },
        DEEP_OBJECTS,
    ),
    "metadata": (
        {
            "model": "chat",
            "messages": [{"role": "user", "content": "Hi"}],
            "metadata": {"trace": DEEP},
        },
        DEEP_LISTS,
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("where", list(DEEP_BODIES))
async def test_deeply_nested_json_is_a_client_error(
    gateway: ServedProcess, where: str, stream: bool
) -> None:
    shape, deep = DEEP_BODIES[where]
    body = json.dumps({**shape, "stream": stream}).replace(json.dumps(DEEP), deep).encode()
    assert len(body) < 16 * 1024
    mark = len(gateway.lines)
    answer = await raw_exchange(
        gateway.port, http_request(CHAT, body, headers=[("Content-Type", "application/json")])
    )
    _client_error(answer.status, answer.body)
    assert_quiet_lines(gateway.lines_since(mark))


# ---- credentials that are not UTF-8 -------------------------------------------------------

BAD_CREDENTIALS = {
    "authorization": ("Authorization", b"Bearer \xff\xfe\xfd-" + MARKER.encode()),
    "authorization-latin1": ("Authorization", b"Bearer sk-\xe9\xe8\xe0" + MARKER.encode()),
    "api-key": ("api-key", b"\xc3\x28" + MARKER.encode()),
    "x-api-key": ("x-api-key", b"\x80\x81\x82" + MARKER.encode()),
}


@pytest.mark.parametrize("header", list(BAD_CREDENTIALS))
async def test_non_utf8_credentials_are_refused_with_a_401(
    keyed_gateway: ServedProcess, header: str
) -> None:
    mark = len(keyed_gateway.lines)
    answer = await raw_exchange(
        keyed_gateway.port,
        http_request(
            CHAT,
            chat_body(),
            headers=[BAD_CREDENTIALS[header], ("Content-Type", "application/json")],
        ),
    )
    _client_error(answer.status, answer.body, allowed=(401,))
    assert_quiet_lines(keyed_gateway.lines_since(mark))


@pytest.mark.parametrize("header", list(BAD_CREDENTIALS))
async def test_non_utf8_credentials_without_a_master_key_are_no_server_error(
    gateway: ServedProcess, header: str
) -> None:
    """No key is needed: the header is not read for access, and must not break the request."""
    mark = len(gateway.lines)
    answer = await raw_exchange(
        gateway.port,
        http_request(
            CHAT,
            chat_body(),
            headers=[BAD_CREDENTIALS[header], ("Content-Type", "application/json")],
        ),
    )
    assert answer.status < 500, answer.body[:500]
    if answer.status >= 400:
        _client_error(answer.status, answer.body)
    assert_quiet_lines(gateway.lines_since(mark))


# ---- content encoding, uploads cut short ---------------------------------------------------


async def test_a_body_labelled_gzip_that_is_not_gzip_is_a_400(gateway: ServedProcess) -> None:
    mark = len(gateway.lines)
    answer = await raw_exchange(
        gateway.port,
        http_request(
            CHAT,
            chat_body(MARKER),
            headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        ),
    )
    _client_error(answer.status, answer.body, allowed=(400,))
    assert_quiet_lines(gateway.lines_since(mark))


async def test_a_truncated_gzip_body_is_a_400(gateway: ServedProcess) -> None:
    packed = gzip.compress(chat_body(MARKER))
    mark = len(gateway.lines)
    answer = await raw_exchange(
        gateway.port,
        http_request(
            CHAT,
            packed[: len(packed) // 2],
            headers=[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        ),
    )
    _client_error(answer.status, answer.body, allowed=(400,))
    assert_quiet_lines(gateway.lines_since(mark))


def _server_errors_counted(gateway: ServedProcess) -> float:
    status, body = _call(gateway, "GET", "/metrics")
    assert status == 200, body[:300]
    text = body.decode()
    found = re.findall(r'^turnout_requests_total\{[^}]*status="5\d\d"[^}]*\} (\S+)$', text, re.M)
    return sum(float(value) for value in found)


async def test_a_client_that_leaves_mid_upload_is_no_server_error(gateway: ServedProcess) -> None:
    before = await asyncio.to_thread(_server_errors_counted, gateway)
    mark = len(gateway.lines)
    for _ in range(5):
        _, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        head = http_request(
            CHAT, b"", headers=[("Content-Type", "application/json")], content_length=False
        )
        writer.write(head[:-2] + b"Content-Length: 50000\r\n\r\n" + chat_body()[:40])
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.transport.abort()
    await asyncio.sleep(0.5)
    after = await asyncio.to_thread(_server_errors_counted, gateway)
    assert after == before, "a client that went away was counted as a server error"
    assert_quiet_lines(gateway.lines_since(mark))
    # The gateway still serves.
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key="sk-x", max_retries=0, timeout=10
    ) as client:
        completion = await client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "Hello"}]
        )
    assert completion.choices[0].message.content


# ---- malformed framing ---------------------------------------------------------------------


def _framing_probes() -> dict[str, tuple[bytes, tuple[int, ...]]]:
    body = chat_body()
    json_type = ("Content-Type", "application/json")
    many = [(f"X-Probe-{index}", MARKER) for index in range(1000)]
    return {
        "content-length-not-a-number": (
            http_request(
                CHAT, body, headers=[json_type, ("Content-Length", MARKER)], content_length=False
            ),
            (400,),
        ),
        "content-length-negative": (
            http_request(
                CHAT, body, headers=[json_type, ("Content-Length", "-12")], content_length=False
            ),
            (400,),
        ),
        "content-length-twice-differing": (
            http_request(
                CHAT,
                body,
                headers=[json_type, ("Content-Length", str(len(body))), ("Content-Length", "3")],
                content_length=False,
            ),
            (400,),
        ),
        "content-length-and-chunked": (
            http_request(
                CHAT,
                body,
                headers=[
                    json_type,
                    ("Transfer-Encoding", "chunked"),
                    ("Content-Length", str(len(body))),
                ],
                content_length=False,
            ),
            (400,),
        ),
        "header-too-large": (
            http_request(CHAT, body, headers=[json_type, ("X-Probe", MARKER * 2000)]),
            (400, 413, 431),
        ),
        "url-too-long": (
            http_request(CHAT + "?q=" + MARKER * 2000, body, headers=[json_type]),
            (400, 414),
        ),
        "too-many-headers": (
            http_request(CHAT, body, headers=[json_type, *many]),
            (400, 413, 431),
        ),
        "request-line-garbage": (
            b"POST /v1/chat/completions HTTP/1.1 " + MARKER.encode() + b"\r\n\r\n",
            (400,),
        ),
        "header-without-colon": (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + MARKER.encode()
            + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body,
            (400,),
        ),
    }


FRAMING = _framing_probes()


@pytest.mark.parametrize("probe", list(FRAMING))
async def test_malformed_framing_gets_openai_shaped_4xx(gateway: ServedProcess, probe: str) -> None:
    data, allowed = FRAMING[probe]
    mark = len(gateway.lines)
    answer = await raw_exchange(gateway.port, data)
    _client_error(answer.status, answer.body, allowed=allowed)
    assert MARKER.encode() not in answer.raw, f"the raw input came back: {answer.raw[:500]!r}"
    assert_quiet_lines(gateway.lines_since(mark))


# ---- generated and mutated bodies ----------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=16,
)
#: Fields the gateway or the upstream read, for mutations to aim at.
FIELDS = st.sampled_from(
    [
        "model",
        "messages",
        "stream",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "tags",
        "temperature",
        "tools",
        "tool_choice",
        "stream_options",
        "response_format",
        "metadata",
        "user",
        "stop",
        "logit_bias",
        "seed",
    ]
)
MESSAGE_FIELDS = st.sampled_from(["role", "content", "name", "tool_calls", "tool_call_id"])


def _valid() -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": "Hello there"}]}


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A valid request with one to three fields replaced, dropped or nested very deep."""
    body = _valid()
    body["stream"] = draw(st.booleans())
    deep = ""
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        action = draw(
            st.sampled_from(["set", "drop", "set_message", "drop_message", "append", "deepen"])
        )
        if action == "set":
            body[draw(FIELDS)] = draw(JSON_VALUES)
        elif action == "drop":
            body.pop(draw(FIELDS), None)
        elif action == "deepen" and not deep:
            depth = draw(st.sampled_from([800, 1000, 1500]) | st.integers(1, 1500))
            opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
            deep = opener * depth + "0" + closer * depth
            body[draw(FIELDS)] = DEEP
        elif action == "append" and isinstance(body.get("messages"), list):
            body["messages"].append(draw(JSON_VALUES))
        elif isinstance(body.get("messages"), list) and body["messages"]:
            message = body["messages"][0]
            if isinstance(message, dict):
                if action == "set_message":
                    message[draw(MESSAGE_FIELDS)] = draw(JSON_VALUES)
                else:
                    message.pop(draw(MESSAGE_FIELDS), None)
    text = json.dumps(body)
    return (text.replace(json.dumps(DEEP), deep) if deep else text).encode()


@st.composite
def mangled_bytes(draw: st.DrawFn) -> bytes:
    raw = bytearray(json.dumps({**_valid(), "stream": draw(st.booleans())}).encode())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and at < len(raw):
            raw[at] = draw(st.integers(min_value=0, max_value=255))
        elif action == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del raw[at : at + 1]
        else:
            del raw[at:]
    return bytes(raw)


def _call(
    gateway: ServedProcess, method: str, path: str, content: bytes | None = None
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=20)
    try:
        headers = {"content-type": "application/json"} if content is not None else {}
        connection.request(method, path, body=content, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def _post(gateway: ServedProcess, content: bytes) -> None:
    status, body = _call(gateway, "POST", CHAT, content)
    assert status < 500, f"{status} for {content[:300]!r}: {body[:300]!r}"
    if status >= 400:
        openai_error(body)


_SETTINGS = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(body=JSON_VALUES)
def test_any_json_body_is_never_a_server_error(fuzzed_gateway: ServedProcess, body: Any) -> None:
    _post(fuzzed_gateway, json.dumps(body).encode())


@_SETTINGS
@given(content=mutated_bodies())
def test_mutated_requests_are_never_a_server_error(
    fuzzed_gateway: ServedProcess, content: bytes
) -> None:
    _post(fuzzed_gateway, content)


@_SETTINGS
@given(content=mangled_bytes())
def test_mangled_bytes_are_never_a_server_error(
    fuzzed_gateway: ServedProcess, content: bytes
) -> None:
    _post(fuzzed_gateway, content)


def test_the_hypothesis_runs_left_no_error_in_the_log(fuzzed_gateway: ServedProcess) -> None:
    """Runs after the generated bodies (file order): none of them made an ERROR or traceback."""
    assert_quiet_lines(fuzzed_gateway.lines_since(0, settle=0.1), loudest="WARNING")
