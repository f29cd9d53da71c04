"""No provider secret reaches a client, whatever an upstream echoes in a streamed error.

Every provider family's fake is told to send its own error event quoting the credentials the
request carried (`echo_credentials`), plus another deployment's key and the gateway's master
key, either as the stream's first event (the client gets a 502 body) or after the answer has
started (the client gets the error as the last event of a 200). The official SDK is the client;
the test reads everything it received (status, headers, every line) and the gateway's log.
Keys of different shapes, and of none, so that each redaction rule is needed somewhere.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import openai
import pytest

from fakes import fake_anthropic, fake_bedrock, fake_gemini, fake_openai
from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_azure import FakeAzure
from fakes.fake_bedrock import FakeBedrock
from fakes.fake_gemini import FakeGemini
from fakes.fake_openai import FakeOpenAI
from gateway_harness import RunningGateway, gateway_config, running_gateway
from raw_upstream import RawReply, raw_upstream
from straddled_keys import (
    KEY,
    MASK,
    RAW_FAMILIES,
    RawFamily,
    bedrock_stream,
    html_error,
    html_text,
    pieces_of_the_key,
    straddling,
)
from turnout import Deployment, HealthConfig, RetryConfig, Secret
from turnout.config.load import load_config

#: A key of no known shape: only the configured-secret rule can catch it.
PLAIN_KEY = "q7LmX2vR9tKpW4zN"
#: An Azure AD token, kept in the deployment's params.
AD_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.Zm9vYmFy.c2lnbmF0dXJl"
ANTHROPIC_KEY = "sk-ant-api03-Xy7Qw3Er5Ty9Ui1Op2As4Df6Gh8Jk0Lz"
GEMINI_KEY = "AIzaSyD3f8Kq2Lm9Np4Rs7Tv1Wx6Yz0Ab5Cd3Ef"
ACCESS_KEY_ID = "AKIDREDACTIONTEST"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEHoaCXVzLWVhc3QtMSJHMEUCIQD4session"
#: Another deployment's key, which the failing upstream quotes too.
OTHER_KEY = "zX81mQ0pLr5sTuV3hG7k"
MASTER_KEY = "gw-master-Y6nB2cD9eF4h"
EVERY_SECRET = (
    PLAIN_KEY,
    AD_TOKEN,
    ANTHROPIC_KEY,
    GEMINI_KEY,
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    OTHER_KEY,
    MASTER_KEY,
)
#: What the failing upstream says besides the echoed credentials.
LEAK = f"upstream proxy trace: peer={OTHER_KEY} gateway={MASTER_KEY}"
#: Bedrock's secret access key never travels (SigV4 signs with it): the upstream is made to
#: quote it anyway, to show that secrets kept in ``params`` are known to the redactor.
AWS_LEAK = f"{LEAK} signing-key={SECRET_ACCESS_KEY}"


@dataclass(frozen=True)
class Family:
    name: str
    start: Callable[[], AbstractAsyncContextManager[Any]]
    chat: Callable[[Any], Deployment]
    #: The fake's error event quoting the request's credentials, after `after` events.
    error_event: Callable[[int], Any]
    #: Events the fake sends before the error by default (the answer has visibly started).
    started_after: int


def _openai(fake: FakeOpenAI) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="openai-compatible",
        model="gpt-4o-mini",
        id="openai-chat",
        base_url=fake.url,
        api_key=Secret(PLAIN_KEY),
    )


def _azure(fake: FakeAzure) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="azure",
        model="gpt-4o-mini",
        id="azure-chat",
        base_url=fake.url,
        api_version="2024-10-21",
        params={"azure_ad_token": Secret(AD_TOKEN)},
    )


def _anthropic(fake: FakeAnthropic) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="anthropic",
        model="claude-sonnet-4-5",
        id="anthropic-chat",
        base_url=fake.url,
        api_key=Secret(ANTHROPIC_KEY),
    )


def _gemini(fake: FakeGemini) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="gemini",
        model="gemini-2.0-flash",
        id="gemini-chat",
        base_url=fake.url,
        api_key=Secret(GEMINI_KEY),
    )


def _bedrock(fake: FakeBedrock) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="bedrock",
        model="anthropic.claude-3-5-sonnet-20240620-v1:0",
        id="bedrock-chat",
        base_url=fake.url,
        params={
            "aws_region_name": fake.region,
            "aws_access_key_id": ACCESS_KEY_ID,
            "aws_secret_access_key": SECRET_ACCESS_KEY,
            "aws_session_token": Secret(SESSION_TOKEN),
        },
    )


FAMILIES = [
    Family(
        "openai-compatible",
        lambda: FakeOpenAI(PLAIN_KEY),
        _openai,
        lambda after: fake_openai.Fault(
            "error_event", after_chunks=after, message=LEAK, echo_credentials=True
        ),
        started_after=2,
    ),
    Family(
        "azure",
        lambda: FakeAzure(None, ad_token=AD_TOKEN, deployments=("gpt-4o-mini",)),
        _azure,
        lambda after: fake_openai.Fault(
            "error_event", after_chunks=after, message=LEAK, echo_credentials=True
        ),
        started_after=2,
    ),
    Family(
        "anthropic",
        lambda: FakeAnthropic(ANTHROPIC_KEY),
        _anthropic,
        lambda after: fake_anthropic.Fault(
            "error_event", after_chunks=after, message=LEAK, echo_credentials=True
        ),
        started_after=4,
    ),
    Family(
        "gemini",
        lambda: FakeGemini(GEMINI_KEY, models=("gemini-2.0-flash",)),
        _gemini,
        lambda after: fake_gemini.Fault(
            "error_event", after_chunks=after, message=LEAK, echo_credentials=True
        ),
        started_after=1,
    ),
    Family(
        "bedrock",
        lambda: FakeBedrock(api_key=None, access_key=ACCESS_KEY_ID, secret_key=SECRET_ACCESS_KEY),
        _bedrock,
        lambda after: fake_bedrock.Fault(
            "error_event", after_frames=after, message=AWS_LEAK, echo_credentials=True
        ),
        started_after=2,
    ),
]


def _other(fake: Any) -> Deployment:
    """A deployment of another group, whose key only the configuration knows."""
    return Deployment(
        model_name="other",
        provider="openai-compatible",
        model="gpt-4o-mini",
        id="other",
        base_url="http://127.0.0.1:9/v1",
        api_key=Secret(OTHER_KEY),
    )


@dataclass
class Env:
    family: Family
    fake: Any
    client: openai.AsyncOpenAI


@pytest.fixture(params=FAMILIES, ids=lambda family: family.name)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    family: Family = request.param
    async with family.start() as fake:
        config = gateway_config(
            family.chat(fake),
            _other(fake),
            master_key=MASTER_KEY,
            retries=RetryConfig(num_retries=0),
            health=HealthConfig(disable_cooldowns=True),
        )
        async with running_gateway(config) as gateway, gateway.client(MASTER_KEY) as client:
            yield Env(family, fake, client)


def _assert_clean(received: str, caplog: pytest.LogCaptureFixture) -> None:
    for secret in EVERY_SECRET:
        assert secret not in received
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in record.getMessage()
    # The fake did quote credentials, and the message did reach the client, redacted.
    echoed = received.partition("(credentials received: ")[2]
    assert echoed.startswith(("**********", "Credential=**********")), received
    assert "upstream proxy trace: peer=********** gateway=**********" in received


async def test_error_as_first_event_reaches_the_client_redacted(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env.fake.enqueue(env.family.error_event(0))
    with pytest.raises(openai.APIStatusError) as caught:
        async with env.client.chat.completions.with_streaming_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        ) as response:
            async for _ in response.iter_lines():
                pass
    http = caught.value.response
    assert http.status_code == 502
    headers = "\n".join(f"{name}: {value}" for name, value in http.headers.items())
    _assert_clean(f"{headers}\n{http.text}\n{caught.value.message}", caplog)


async def test_error_mid_stream_reaches_the_client_redacted(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env.fake.enqueue(env.family.error_event(env.family.started_after))
    async with env.client.chat.completions.with_streaming_response.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as response:
        assert response.status_code == 200
        headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
        lines = [line async for line in response.iter_lines() if line]
    assert any('"content"' in line for line in lines), "the answer had not started"
    assert '"error"' in lines[-1] and "[DONE]" not in lines[-1]
    _assert_clean(headers + "\n" + "\n".join(lines), caplog)


async def test_a_reload_brings_the_new_keys_into_redaction(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = "Kd83mWq0Zr5tYb7n", "Pq19xLs4Vn6cJh2w"
    path = tmp_path / "turnout.yaml"

    def write(key: str) -> None:
        path.write_text(
            "model_list:\n"
            "  - model_name: chat\n"
            "    provider: openai-compatible\n"
            "    model: gpt-4o-mini\n"
            f"    base_url: {fake.url}\n"
            f"    api_key: {key}\n"
        )

    caplog.set_level(logging.DEBUG)
    async with FakeOpenAI(first) as fake:
        write(first)
        async with running_gateway(load_config(path)) as gateway, gateway.client() as client:
            write(second)
            fake.api_key = second
            await gateway.gateway.reload()
            fake.enqueue(fake_openai.Fault("error_event", message=LEAK, echo_credentials=True))
            async with client.chat.completions.with_streaming_response.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
            ) as response:
                lines = [line async for line in response.iter_lines() if line]
    received = "\n".join(lines)
    assert "(credentials received: **********)" in received
    assert second not in received
    assert second not in caplog.text


async def test_a_key_cut_by_the_attempt_summary_is_removed_before_the_cut(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Attempt summaries shorten long upstream messages; a key straddling the cut would leave
    half of itself behind if redaction ran only on the final body."""
    async with FakeOpenAI(PLAIN_KEY) as fake:
        config = gateway_config(_openai(fake), retries=RetryConfig(num_retries=0))
        padding = "x" * 150
        fake.enqueue(
            fake_openai.Fault("error_event", after_chunks=0, message=padding, echo_credentials=True)
        )
        async with running_gateway(config) as gateway, gateway.client() as client:
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
                )
    text = caught.value.response.text
    assert "…" in text  # the summary was cut
    for start in range(len(PLAIN_KEY) - 5):
        assert PLAIN_KEY[start : start + 6] not in text


# -- long upstream text: redacted before it is shortened -----------------------------------


def _assert_no_piece(received: str, caplog: pytest.LogCaptureFixture, key: str = KEY) -> None:
    """Not even part of `key` reached the client or the log, and the message that quoted it
    did (redacted), shortened."""
    assert pieces_of_the_key(received, key) == [], received
    assert pieces_of_the_key(caplog.text, key) == []
    assert MASK in received and "yyyyyyyyyy" in received
    assert "end of message" not in received  # the long message was shortened


async def _received_error(gateway: RunningGateway, stream: bool) -> tuple[int, str]:
    """The status and everything the client received (headers, body) for a failing request."""
    async with gateway.client(MASTER_KEY) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            if stream:
                async with client.chat.completions.with_streaming_response.create(
                    model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
                ) as response:
                    async for _ in response.iter_lines():
                        pass
            else:
                await client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "hi"}]
                )
    http = caught.value.response
    headers = "\n".join(f"{name}: {value}" for name, value in http.headers.items())
    return http.status_code, f"{headers}\n{http.text}\n{caught.value.message}"


@asynccontextmanager
async def _raw_gateway(family: RawFamily, reply: RawReply) -> AsyncIterator[RunningGateway]:
    """A gateway whose only deployment, of `family`, is answered `reply` by a raw upstream."""
    async with raw_upstream(reply) as upstream:
        config = gateway_config(
            family.deployment(upstream.url),
            master_key=MASTER_KEY,
            retries=RetryConfig(num_retries=0),
            health=HealthConfig(disable_cooldowns=True),
        )
        async with running_gateway(config) as gateway:
            yield gateway


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("shape", ["html", "json"])
@pytest.mark.parametrize("family", RAW_FAMILIES, ids=lambda family: family.name)
async def test_a_key_straddling_the_cut_of_a_long_error_never_reaches_the_client(
    family: RawFamily, shape: str, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A 502 whose body (an HTML page, or the family's JSON error) quotes a configured key of
    no known shape where the long message gets cut."""
    caplog.set_level(logging.DEBUG)
    reply = html_error(html_text()) if shape == "html" else family.json_error(straddling())
    async with _raw_gateway(family, reply) as gateway:
        status, received = await _received_error(gateway, stream)
    assert status == 502
    _assert_no_piece(received, caplog)


@pytest.mark.parametrize("started", [False, True], ids=["first-frame", "mid-stream"])
async def test_a_key_straddling_the_cut_of_a_text_exception_frame_never_reaches_the_client(
    started: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Bedrock's exception frames carry ``{"message"}``; one whose payload is plain text is
    quoted whole, and must be redacted before it is shortened all the same."""
    caplog.set_level(logging.DEBUG)
    bedrock = next(family for family in RAW_FAMILIES if family.name == "bedrock")
    reply = bedrock_stream(straddling().encode(), started=started)
    async with _raw_gateway(bedrock, reply) as gateway:
        if not started:
            status, received = await _received_error(gateway, stream=True)
            assert status == 502
        else:
            async with (
                gateway.client(MASTER_KEY) as client,
                client.chat.completions.with_streaming_response.create(
                    model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
                ) as response,
            ):
                assert response.status_code == 200
                lines = [line async for line in response.iter_lines() if line]
            assert '"error"' in lines[-1]
            received = "\n".join(lines)
    _assert_no_piece(received, caplog)


@pytest.mark.parametrize("started", [False, True], ids=["first-event", "mid-stream"])
async def test_a_key_straddling_the_cut_of_a_long_error_event_never_reaches_the_client(
    env: Env, started: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Each family's own error event, its message long and quoting another deployment's key
    (of no known shape) where the message gets cut."""
    caplog.set_level(logging.DEBUG)
    events = env.family.started_after if started else 0
    env.fake.enqueue(replace(env.family.error_event(events), message=straddling(key=OTHER_KEY)))
    request = env.client.chat.completions.with_streaming_response.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    if started:
        async with request as response:
            assert response.status_code == 200
            received = "\n".join([line async for line in response.iter_lines() if line])
        assert '"error"' in received.splitlines()[-1]
    else:
        with pytest.raises(openai.APIStatusError) as caught:
            async with request as response:
                async for _ in response.iter_lines():
                    pass
        assert caught.value.response.status_code == 502
        received = caught.value.response.text
    _assert_no_piece(received, caplog, OTHER_KEY)
    for secret in EVERY_SECRET:
        assert secret not in received
