"""`/v1/messages` to a Bedrock deployment of a Claude model passes through InvokeModel: the
caller's body (without ``model`` and ``stream``, with Bedrock's ``anthropic_version`` and the
betas as ``anthropic_beta``) goes upstream SigV4-signed, and the answer, whole or streamed,
comes back as Claude gave it, thinking blocks and their signatures included."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import anthropic
import msgspec
import pytest
from messages_kit import MASTER, deployment, gateway, litellm_config, raw_events, sdk

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_bedrock import FakeBedrock, Fault, eventstream
from raw_upstream import RawReply, raw_upstream

PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
QUESTION: Any = [{"role": "user", "content": "what is two and two"}]
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
EXPECTED = "Fake answer to: what is two and two"
SIGNATURE = "EqQBCkYIBxgCKkB7c2lnbmF0dXJlIG9mIHRoZSB0aGlua2luZw=="
#: A Message with thinking, as Bedrock's Claude answers one (its odd spacing kept).
MESSAGE = (
    b'{"id":"msg_bdrk_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant",'
    b'"model":"claude-sonnet-4-5-20250929","content":[{"type":"thinking",'
    b'"thinking":"Two and two make four.","signature":"' + SIGNATURE.encode() + b'"},'
    b'{"type":"text","text":"4"}],"stop_reason":"end_turn","stop_sequence":null,'
    b'"usage":{"input_tokens":12, "output_tokens":9}}'
)
#: The same answer streamed: each event's JSON as Bedrock's ``chunk`` frames carry it.
EVENTS = [
    b'{"type":"message_start","message":{"id":"msg_bdrk_01XFDUDYJgAACzvnptvVoYEL",'
    b'"type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],'
    b'"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}',
    b'{"type":"content_block_start","index":0,'
    b'"content_block":{"type":"thinking","thinking":"","signature":""}}',
    b'{"type":"content_block_delta","index":0,'
    b'"delta":{"type":"thinking_delta","thinking":"Two and two make four."}}',
    b'{"type":"content_block_delta","index":0,'
    b'"delta":{"type":"signature_delta","signature":"' + SIGNATURE.encode() + b'"}}',
    b'{"type":"content_block_stop","index":0}',
    b'{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}',
    b'{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"4"}}',
    b'{"type":"content_block_stop","index":1}',
    b'{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"output_tokens":9}}',
    b'{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,'
    b'"outputTokenCount":9,"invocationLatency":412,"firstByteLatency":198}}',
]


def bedrock(name: str, url: str, fake: FakeBedrock | None = None, **params: Any) -> dict[str, Any]:
    """A LiteLLM `model_list` entry for a Bedrock Claude deployment, signing with SigV4."""
    keys = fake.keys if fake is not None else None
    litellm_params = {
        "model": f"bedrock/{PROFILE}",
        "api_base": url,
        "aws_region_name": "us-east-1",
        "aws_access_key_id": keys.access_key if keys else "AKIDFAKEBEDROCK",
        "aws_secret_access_key": keys.secret_key if keys else "fake-bedrock-secret",
        **params,
    }
    return {"model_name": name, "litellm_params": litellm_params}


def _frames(events: list[bytes]) -> bytes:
    headers = {
        ":event-type": "chunk",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return b"".join(
        eventstream.frame(headers, msgspec.json.encode({"bytes": base64.b64encode(e).decode()}))
        for e in events
    )


async def _raw(url: str, body: dict[str, Any]) -> bytes:
    headers = {"x-api-key": MASTER, "anthropic-version": "2023-06-01"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/messages", json=body, headers=headers) as response,
    ):
        raw = await response.read()
        assert response.status == 200, raw
    return raw


@pytest.mark.parametrize("streamed", [False, True])
async def test_bedrocks_answer_comes_back_byte_for_byte(streamed: bool) -> None:
    reply = (
        RawReply(200, _frames(EVENTS), "application/vnd.amazon.eventstream")
        if streamed
        else RawReply(200, MESSAGE, "application/json")
    )
    ask = {"model": "claude", "max_tokens": 2048, "thinking": THINKING, "messages": QUESTION}
    async with (
        raw_upstream(reply) as upstream,
        gateway(litellm_config(bedrock("claude", upstream.url))) as running,
    ):
        raw = await _raw(running.url, {**ask, "stream": True} if streamed else ask)
        async with sdk(running) as client:
            if streamed:
                async with client.messages.stream(**ask) as stream:
                    message = await stream.get_final_message()
            else:
                message = await client.messages.create(**ask)
    if streamed:
        frames = [
            b"\n".join(line for line in frame.split(b"\n") if not line.startswith(b":"))
            for frame in raw.split(b"\n\n")
            if frame.strip(b"\n") and not frame.startswith(b":")
        ]
        expected = [
            b"event: " + msgspec.json.decode(e)["type"].encode() + b"\ndata: " + e for e in EVENTS
        ]
        assert [f for f in frames if f] == expected
    else:
        assert raw == MESSAGE
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.signature == SIGNATURE
    assert text.type == "text" and text.text == "4"


@pytest.mark.parametrize("streamed", [False, True])
async def test_claude_on_bedrock_is_invoked_with_the_callers_body(streamed: bool) -> None:
    system: Any = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    async with FakeBedrock() as fake:
        entry = bedrock("claude", fake.url, fake, extra_body={"anthropic_beta": ["beta-a"]})
        async with gateway(litellm_config(entry)) as running, sdk(running) as client:
            ask: Any = {
                "model": "claude",
                "max_tokens": 2048,
                "system": system,
                "thinking": THINKING,
                "messages": QUESTION,
                "extra_headers": {"anthropic-beta": "beta-b, beta-a,beta-c"},
            }
            if streamed:
                async with client.messages.stream(**ask) as stream:
                    message = await stream.get_final_message()
            else:
                message = await client.messages.create(**ask)
    [received] = fake.requests
    assert received.action == ("invoke-with-response-stream" if streamed else "invoke")
    assert received.model == PROFILE and received.auth == "sigv4"
    assert received.json == {
        "max_tokens": 2048,
        "system": system,
        "thinking": THINKING,
        "messages": QUESTION,
        "anthropic_version": "bedrock-2023-05-31",
        "anthropic_beta": ["beta-a", "beta-b", "beta-c"],
    }
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.signature and thinking.thinking
    assert text.type == "text" and text.text == EXPECTED
    assert message.model == PROFILE and message.usage.output_tokens > 0


async def test_a_wrong_signature_is_refused_by_bedrock() -> None:
    async with FakeBedrock() as fake:
        entry = bedrock("claude", fake.url, aws_secret_access_key="not-the-secret")
        async with gateway(litellm_config(entry)) as running, sdk(running) as client:
            with pytest.raises(anthropic.APIStatusError) as refused:
                await client.messages.create(model="claude", max_tokens=64, messages=QUESTION)
    # The gateway's own key for the deployment is wrong: an upstream failure, not the caller's.
    assert refused.value.status_code == 502
    assert "InvalidSignatureException" in str(refused.value)
    assert "not-the-secret" not in str(refused.value)
    assert [(r.action, r.auth) for r in fake.requests] == [("invoke", None)]


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_failing_bedrock_claude_falls_back_to_anthropic(streamed: bool) -> None:
    async with FakeBedrock() as fake, FakeAnthropic() as claude:
        fake.set_default(Fault.throttled())
        config = litellm_config(
            bedrock("claude", fake.url, fake),
            deployment("spare", "anthropic", claude.url),
            fallbacks=[{"claude": ["spare"]}],
        )
        async with gateway(config) as running, sdk(running) as client:
            ask: Any = {"model": "claude", "max_tokens": 64, "messages": QUESTION}
            if streamed:
                async with client.messages.stream(**ask) as stream:
                    message = await stream.get_final_message()
            else:
                message = await client.messages.create(**ask)
    assert [block.text for block in message.content if block.type == "text"] == [EXPECTED]
    assert fake.requests and all(r.action and r.action.startswith("invoke") for r in fake.requests)
    assert len(claude.requests) == 1


async def test_an_exception_mid_stream_ends_with_an_error_event() -> None:
    async with FakeBedrock() as fake:
        broken = Fault("error_event", after_frames=3, error_type="ModelStreamErrorException")
        fake.set_default(broken)
        async with gateway(litellm_config(bedrock("claude", fake.url, fake))) as running:
            events = await raw_events(
                running.url, {"model": "claude", "max_tokens": 64, "messages": QUESTION}
            )
            async with sdk(running) as client:
                with pytest.raises(anthropic.APIStatusError) as failed:
                    async with client.messages.stream(
                        model="claude", max_tokens=64, messages=QUESTION
                    ) as stream:
                        await stream.get_final_message()
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "content_block_start"] and names[-1] == "error"
    assert "message_stop" not in names and "message_delta" not in names
    error = events[-1][1]
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "fake-bedrock-secret" not in str(events)
    assert isinstance(failed.value.body, dict) and failed.value.body["error"]["type"] == "api_error"
