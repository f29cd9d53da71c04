"""Issue 10, "Resilience where users stand", checked from the issue's text alone.

Every scenario runs in the shape the issue names: a LiteLLM ``config.yaml`` with one deployment
per model, ``fallbacks`` and ``context_window_fallbacks``, ``num_retries: 2``, ``timeout: 30``,
everything else at turnout's defaults, and the official `openai` SDK at its default retries.
Each test names the observation of the issue it checks.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from issue10_rig import (
    ANSWER,
    MESSAGES,
    Stopwatch,
    anthropic_fake,
    anthropic_params,
    openai_params,
    standard_settings,
    streamed_text,
    users_shape,
    warm_up,
)

from fakes.fake_anthropic import Fault as AnthropicFault
from fakes.fake_openai import FakeOpenAI, Fault

_PREFILL_REFUSED = (
    "This model does not support assistant message prefill. "
    "The conversation must end with a user message."
)


def _count(fake: Any) -> int:
    return len(fake.requests)


# ---- 1. a stream cut, stalled or malformed mid-answer is continued on the fallback ----------


@pytest.mark.parametrize("kind", ["cut", "malformed"])
async def test_1_broken_stream_is_continued_on_the_fallback_model(
    tmp_path: Path, kind: str
) -> None:
    async with users_shape(tmp_path) as shape:
        shape.primary.enqueue(Fault(kind, after_chunks=4))  # type: ignore[arg-type]
        watch = Stopwatch()
        text = await streamed_text(shape.sdk(timeout=30), "chat")
        assert text == ANSWER, f"the caller got {text!r}"
        assert watch.elapsed < 10
        assert _count(shape.primary) == 1
        assert _count(shape.spare) >= 1 or kind == "malformed"
        await shape.assert_healthy()


async def test_1_cut_stream_continuation_carries_what_was_already_said(tmp_path: Path) -> None:
    """The fallback is asked to continue (prefill or instruction), not to start afresh."""
    async with users_shape(tmp_path) as shape:
        shape.primary.enqueue(Fault("cut", after_chunks=4))
        text = await streamed_text(shape.sdk(timeout=30), "chat")
        assert text == ANSWER
        assert _count(shape.spare) == 1
        sent = shape.spare.requests[0].json["messages"]
        assert any(message.get("role") == "assistant" for message in sent), sent


async def test_1_continuation_on_anthropic_fallback_refusing_prefill(tmp_path: Path) -> None:
    """A target that refuses the prefill is re-asked by instruction; the refusal never reaches
    the caller."""
    async with anthropic_fake() as claude:
        claude.enqueue(AnthropicFault.http_error(400, "invalid_request_error", _PREFILL_REFUSED))
        primary = FakeOpenAI()
        async with primary:
            models = [
                ("chat", openai_params(primary.url)),
                ("spare", anthropic_params(claude.url)),
            ]
            settings = standard_settings()
            settings.pop("context_window_fallbacks")
            async with users_shape(tmp_path, models=models, settings=settings) as shape:
                primary.enqueue(Fault("cut", after_chunks=4))
                text = await streamed_text(shape.sdk(timeout=30), "chat")
                assert text == ANSWER, f"the caller got {text!r}"
                assert _count(primary) == 1
                assert len(claude.requests) == 2, [r.json["messages"] for r in claude.requests]
                refused, asked = (r.json["messages"] for r in claude.requests)
                assert refused[-1]["role"] == "assistant"
                assert asked[-1]["role"] == "user"


async def test_1_stall_mid_stream_is_continued_inside_the_sdk_timeout(tmp_path: Path) -> None:
    async with users_shape(tmp_path) as shape:
        await warm_up(shape, stream=True)
        before = _count(shape.primary)
        shape.primary.enqueue(Fault("stall", after_chunks=4))
        watch = Stopwatch()
        text = await streamed_text(shape.sdk(timeout=30), "chat")
        assert text == ANSWER
        assert watch.elapsed < 25, f"the stall held the stream {watch.elapsed:.1f} s"
        assert _count(shape.primary) == before + 1
        assert _count(shape.spare) == 1
        await shape.assert_healthy()


# ---- 2. a silent upstream does not eat the deadline ------------------------------------------


async def test_2_silent_primary_is_left_for_the_fallback_inside_30s(tmp_path: Path) -> None:
    async with users_shape(tmp_path) as shape:
        await warm_up(shape, stream=False)
        before = _count(shape.primary)
        shape.primary.enqueue(Fault("hang"))
        watch = Stopwatch()
        reply = await shape.sdk(timeout=30).chat.completions.create(model="chat", messages=MESSAGES)
        assert reply.choices[0].message.content == ANSWER
        assert watch.elapsed < 25, f"the silent primary held the request {watch.elapsed:.1f} s"
        assert _count(shape.primary) == before + 1, "a timed-out deployment was retried"
        assert _count(shape.spare) == 1
        await shape.assert_healthy()


async def test_2_silent_primary_cold_still_answered_inside_30s(tmp_path: Path) -> None:
    """No warm-up: conservative limits must still leave time for the fallback."""
    async with users_shape(tmp_path) as shape:
        shape.primary.enqueue(Fault("hang"))
        watch = Stopwatch()
        text = await streamed_text(shape.sdk(timeout=30), "chat")
        assert text == ANSWER
        assert watch.elapsed < 29.5
        assert _count(shape.primary) == 1
        assert _count(shape.spare) == 1


async def test_2_a_20s_first_token_is_not_waited_out(tmp_path: Path) -> None:
    async with users_shape(tmp_path) as shape:
        await warm_up(shape, stream=True)
        shape.primary.enqueue(Fault("slow_first_token", seconds=20))
        watch = Stopwatch()
        text = await streamed_text(shape.sdk(timeout=30), "chat")
        assert text == ANSWER
        assert watch.elapsed < 15, f"waited {watch.elapsed:.1f} s for a slow first token"
        assert _count(shape.spare) == 1


async def test_2_per_request_limits_override(tmp_path: Path) -> None:
    async with users_shape(tmp_path) as shape:
        shape.primary.enqueue(Fault("hang"))
        watch = Stopwatch()
        text = await streamed_text(
            shape.sdk(timeout=30),
            "chat",
            extra_headers={"x-turnout-first-token-timeout-ms": "500"},
        )
        assert text == ANSWER
        assert watch.elapsed < 3
        shape.primary.enqueue(Fault("stall", after_chunks=4))
        watch = Stopwatch()
        text = await streamed_text(
            shape.sdk(timeout=30), "chat", extra_headers={"x-turnout-idle-timeout-ms": "500"}
        )
        assert text == ANSWER
        assert watch.elapsed < 3


async def test_2_per_deployment_stream_timeout_override(tmp_path: Path) -> None:
    async with users_shape(tmp_path, primary_extra={"stream_timeout": 1}) as shape:
        shape.primary.enqueue(Fault("hang"))
        watch = Stopwatch()
        text = await streamed_text(shape.sdk(timeout=30), "chat")
        assert text == ANSWER
        assert watch.elapsed < 4
        assert _count(shape.primary) == 1


# ---- 3. LiteLLM's timeout is per call ---------------------------------------------------------


async def test_3_litellm_timeout_bounds_each_call_not_all_attempts(tmp_path: Path) -> None:
    """`timeout: 2` cuts the silent primary at about 2 s; the fallback, which takes 1.5 s, still
    answers (a deadline of 2 s over all attempts would have failed the request)."""
    settings = standard_settings(timeout=2)
    async with users_shape(tmp_path, settings=settings) as shape:
        shape.primary.enqueue(Fault("hang"))
        shape.spare.enqueue(Fault("delay", seconds=1.5))
        watch = Stopwatch()
        reply = await shape.sdk(timeout=30).chat.completions.create(model="chat", messages=MESSAGES)
        assert reply.choices[0].message.content == ANSWER
        assert 2.5 < watch.elapsed < 6, watch.elapsed
        assert _count(shape.primary) == 1
        assert _count(shape.spare) == 1


# ---- 4. the retry budget does not block fallbacks during an outage ---------------------------


async def test_4_outage_of_a_one_deployment_model_every_request_served(tmp_path: Path) -> None:
    async with users_shape(tmp_path) as shape:
        shape.primary.set_default(Fault.unavailable())
        client = shape.sdk(timeout=30)
        for index in range(40):
            reply = await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert reply.choices[0].message.content == ANSWER, index
        concurrent = [
            client.chat.completions.create(model="chat", messages=MESSAGES) for _ in range(30)
        ]
        replies = await asyncio.gather(*concurrent)
        assert all(r.choices[0].message.content == ANSWER for r in replies)
        assert _count(shape.spare) == 70
        assert _count(shape.primary) <= 6, "the failing provider kept getting traffic"
        shape.primary.set_default(None)
        await shape.assert_healthy()


# ---- 5. a recovered primary is back in rotation within seconds -------------------------------


async def test_5_recovered_primary_back_within_seconds(tmp_path: Path) -> None:
    """A 6 s outage inside a 12 s sequence: the primary serves again before the end."""
    async with users_shape(tmp_path) as shape:
        client = shape.sdk(timeout=30)
        shape.primary.set_default(Fault.unavailable())
        watch = Stopwatch()
        while watch.elapsed < 6:
            reply = await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert reply.choices[0].message.content == ANSWER
            await asyncio.sleep(0.2)
        shape.primary.set_default(None)
        recovered_at = watch.elapsed
        served_by_primary: list[float] = []
        while watch.elapsed < 12:
            primary_before, spare_before = _count(shape.primary), _count(shape.spare)
            reply = await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert reply.choices[0].message.content == ANSWER
            if _count(shape.primary) > primary_before and _count(shape.spare) == spare_before:
                served_by_primary.append(watch.elapsed)
            await asyncio.sleep(0.2)
        assert served_by_primary, "the primary never served again in the 12 s sequence"
        back = served_by_primary[0] - recovered_at
        assert back < 5.5, f"the primary was back {back:.1f} s after it recovered"
        # once back, it stays in rotation: the last requests were all the primary's
        assert served_by_primary[-1] > 11, served_by_primary
        entry = await shape.deployment("chat")
        assert not entry["cooling_down"], entry


# ---- 6. content-policy rejections are routed only by a content_policy list -------------------


async def test_6_content_policy_without_list_is_a_400_not_retried(tmp_path: Path) -> None:
    async with users_shape(tmp_path) as shape:
        shape.primary.enqueue(Fault.content_policy())
        with pytest.raises(openai.BadRequestError) as raised:
            await shape.sdk(timeout=30).chat.completions.create(model="chat", messages=MESSAGES)
        assert raised.value.status_code == 400
        assert "safety system" in str(raised.value)
        assert _count(shape.primary) == 1
        assert _count(shape.spare) == 0
        assert _count(shape.big) == 0
        await shape.assert_healthy()


async def test_6_content_policy_with_list_goes_to_it(tmp_path: Path) -> None:
    settings = standard_settings(content_policy_fallbacks=[{"chat": ["big"]}])
    async with users_shape(tmp_path, settings=settings) as shape:
        shape.primary.enqueue(Fault.content_policy())
        reply = await shape.sdk(timeout=30).chat.completions.create(model="chat", messages=MESSAGES)
        assert reply.choices[0].message.content == ANSWER
        assert _count(shape.big) == 1
        assert _count(shape.spare) == 0


async def test_context_window_fallback_in_the_users_shape(tmp_path: Path) -> None:
    async with users_shape(tmp_path) as shape:
        shape.primary.enqueue(Fault.context_length_exceeded())
        reply = await shape.sdk(timeout=30).chat.completions.create(model="chat", messages=MESSAGES)
        assert reply.choices[0].message.content == ANSWER
        assert _count(shape.big) == 1
        assert _count(shape.spare) == 0


# ---- 7. a 429 does not make the request wait when something else can answer -----------------


@pytest.mark.parametrize("stream", [False, True])
async def test_7_rate_limited_primary_answered_now_by_fallback(
    tmp_path: Path, stream: bool
) -> None:
    async with users_shape(tmp_path) as shape:
        shape.primary.enqueue(Fault.rate_limited(retry_after=2))
        client = shape.sdk(timeout=30)
        watch = Stopwatch()
        if stream:
            assert await streamed_text(client, "chat") == ANSWER
        else:
            reply = await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert reply.choices[0].message.content == ANSWER
        assert watch.elapsed < 1.5, f"a 429 with a fallback idle held {watch.elapsed:.1f} s"
        assert _count(shape.primary) == 1
        assert _count(shape.spare) == 1
        entry = await shape.deployment("chat")
        assert entry["cooling_down"]
        assert entry["cooldown_seconds_left"] <= 2.05, entry


async def test_7_cooldown_from_retry_after_lasts_as_the_provider_said(tmp_path: Path) -> None:
    async with users_shape(tmp_path) as shape:
        shape.primary.enqueue(Fault.rate_limited(retry_after=1))
        client = shape.sdk(timeout=30)
        await client.chat.completions.create(model="chat", messages=MESSAGES)
        await asyncio.sleep(1.6)
        before = _count(shape.primary)
        reply = await client.chat.completions.create(model="chat", messages=MESSAGES)
        assert reply.choices[0].message.content == ANSWER
        assert _count(shape.primary) == before + 1, "still out after its Retry-After"


async def test_7_nothing_else_can_answer_waits_only_as_asked(tmp_path: Path) -> None:
    settings = {"num_retries": 2, "timeout": 30}
    async with FakeOpenAI() as only:
        models = [("solo", openai_params(only.url))]
        async with users_shape(tmp_path, models=models, settings=settings) as shape:
            only.enqueue(Fault.rate_limited(retry_after=1))
            watch = Stopwatch()
            reply = await shape.sdk(timeout=30).chat.completions.create(
                model="solo", messages=MESSAGES
            )
            assert reply.choices[0].message.content == ANSWER
            assert 0.8 < watch.elapsed < 3.5, watch.elapsed
            assert len(only.requests) == 2


async def test_7_long_retry_after_does_not_outlive_the_callers_deadline(tmp_path: Path) -> None:
    settings = {"num_retries": 2, "timeout": 30}
    async with FakeOpenAI() as only:
        models = [("solo", openai_params(only.url))]
        async with users_shape(tmp_path, models=models, settings=settings) as shape:
            only.set_default(Fault.rate_limited(retry_after=7))
            watch = Stopwatch()
            with pytest.raises(openai.APIError):
                await shape.sdk(timeout=30).chat.completions.create(
                    model="solo",
                    messages=MESSAGES,
                    extra_headers={"x-turnout-timeout-ms": "2000"},
                )
            assert watch.elapsed < 3.5, f"held {watch.elapsed:.1f} s for a 2 s deadline"


# ---- 8. the SDK's retries do not multiply the gateway's ---------------------------------------


async def test_8_short_sdk_deadline_is_met_with_default_retries(tmp_path: Path) -> None:
    async with users_shape(tmp_path) as shape:
        shape.primary.set_default(Fault("hang"))
        shape.spare.set_default(Fault("hang"))
        watch = Stopwatch()
        with pytest.raises(openai.APIError):
            await shape.sdk(timeout=0.3).chat.completions.create(model="chat", messages=MESSAGES)
        assert watch.elapsed < 0.9, f"a 0.3 s deadline ended after {watch.elapsed:.2f} s"


async def test_8_header_deadline_is_met_with_default_retries(tmp_path: Path) -> None:
    async with users_shape(tmp_path) as shape:
        shape.primary.set_default(Fault("hang"))
        shape.spare.set_default(Fault("hang"))
        watch = Stopwatch()
        with pytest.raises(openai.APIStatusError) as raised:
            await shape.sdk().chat.completions.create(
                model="chat", messages=MESSAGES, extra_headers={"x-turnout-timeout-ms": "300"}
            )
        assert watch.elapsed < 0.9, f"a 0.3 s deadline ended after {watch.elapsed:.2f} s"
        assert raised.value.response.headers.get("x-should-retry") == "false"


async def test_8_failed_after_failover_tells_the_sdk_not_to_retry(tmp_path: Path) -> None:
    async with users_shape(tmp_path) as shape:
        shape.primary.set_default(Fault.server_error())
        shape.spare.set_default(Fault.server_error())
        with pytest.raises(openai.APIStatusError) as raised:
            await shape.sdk(timeout=30).chat.completions.create(model="chat", messages=MESSAGES)
        assert raised.value.response.headers.get("x-should-retry") == "false"
        attempts = _count(shape.primary) + _count(shape.spare)
        # num_retries 2 bounds the gateway at 3 attempts a model; the SDK's own two retries
        # would triple that.
        assert attempts <= 6, f"{attempts} upstream attempts for one call"


async def test_8_open_circuit_does_not_make_the_sdk_wait(tmp_path: Path) -> None:
    settings = {"num_retries": 2, "timeout": 30}
    async with FakeOpenAI() as only:
        models = [("solo", openai_params(only.url))]
        async with users_shape(tmp_path, models=models, settings=settings) as shape:
            only.set_default(Fault.unavailable())
            answers: list[tuple[int, str | None, str | None]] = []

            async def seen(response: httpx2.Response) -> None:
                headers = response.headers
                status = (response.status_code, headers.get("retry-after"))
                answers.append((*status, headers.get("x-should-retry")))

            http = httpx2.AsyncClient(event_hooks={"response": [seen]})
            client = shape.sdk(timeout=30, http_client=http)
            for _ in range(5):
                answers.clear()
                watch = Stopwatch()
                with pytest.raises(openai.APIStatusError):
                    await client.chat.completions.create(model="solo", messages=MESSAGES)
                # (status, Retry-After, x-should-retry) of every answer the SDK got
                assert watch.elapsed < 29, f"the SDK waited {watch.elapsed:.1f} s: {answers}"
                for _, retry_after, _ in answers:
                    assert retry_after is None or float(retry_after) < 29, answers
                assert answers[-1][2] == "false", answers


# ---- 9. mixed groups route by capability -------------------------------------------------------

_PARAMS: list[tuple[str, dict[str, Any]]] = [
    ("n", {"n": 2}),
    ("response_format", {"response_format": {"type": "json_object"}}),
    ("logprobs", {"logprobs": True, "top_logprobs": 2}),
    ("seed", {"seed": 7}),
    ("metadata", {"metadata": {"team": "rails"}, "store": True}),
]


async def test_9_mixed_group_answers_every_parameter(tmp_path: Path) -> None:
    async with anthropic_fake() as claude, FakeOpenAI() as gpt:
        models = [("mixed", openai_params(gpt.url)), ("mixed", anthropic_params(claude.url))]
        settings = {"num_retries": 2, "timeout": 30}
        async with users_shape(tmp_path, models=models, settings=settings) as shape:
            client = shape.sdk(timeout=30)
            messages: list[Any] = [
                {"role": "user", "content": "Reply in JSON please, about turnouts"}
            ]
            for name, params in _PARAMS:
                for _ in range(6):
                    claude_before = len(claude.requests)
                    reply = await client.chat.completions.create(
                        model="mixed", messages=messages, **params
                    )
                    content = reply.choices[0].message.content or ""
                    assert content, name
                    by_claude = len(claude.requests) > claude_before
                    if name == "n":
                        assert len(reply.choices) == 2
                    if name == "response_format" and by_claude:
                        # the documented translation: JSON mode through a forced tool
                        json.loads(content)
                    if name in ("n", "logprobs", "seed", "metadata"):
                        # routed by declared capability: never sent where it cannot be honoured
                        assert not by_claude, (name, claude.requests[-1].json)
            assert len(gpt.requests) >= 24


async def test_9_parameter_no_deployment_can_honour_is_a_400_naming_it(tmp_path: Path) -> None:
    async with anthropic_fake() as claude:
        models = [("claude", anthropic_params(claude.url))]
        settings = {"num_retries": 2, "timeout": 30}
        async with users_shape(tmp_path, models=models, settings=settings) as shape:
            with pytest.raises(openai.BadRequestError) as raised:
                await shape.sdk(timeout=30).chat.completions.create(
                    model="claude", messages=MESSAGES, logprobs=True
                )
            assert "logprobs" in str(raised.value)
            assert len(claude.requests) == 0


async def test_9_capability_through_the_fallback(tmp_path: Path) -> None:
    """An Anthropic model whose fallback is OpenAI: `n` is answered by the fallback."""
    async with anthropic_fake() as claude, FakeOpenAI() as gpt:
        models = [("claude", anthropic_params(claude.url)), ("gpt", openai_params(gpt.url))]
        settings = {"fallbacks": [{"claude": ["gpt"]}], "num_retries": 2, "timeout": 30}
        async with users_shape(tmp_path, models=models, settings=settings) as shape:
            reply = await shape.sdk(timeout=30).chat.completions.create(
                model="claude", messages=MESSAGES, n=2
            )
            assert len(reply.choices) == 2
            assert len(gpt.requests) == 1


# ---- 10. the gateway's own refused credentials are a deployment fault ------------------------


async def test_10_refused_gateway_key_fails_over(tmp_path: Path) -> None:
    wrong = {"api_key": "sk-wrong-key-0123456789"}
    async with users_shape(tmp_path, primary_extra=wrong) as shape:
        client = shape.sdk(timeout=30)
        for _ in range(3):
            reply = await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert reply.choices[0].message.content == ANSWER
        assert _count(shape.spare) == 3
        assert _count(shape.primary) == 1, "a refused key was used again at once"
        entry = await shape.deployment("chat")
        assert entry["cooling_down"]
        assert entry["cooldown_reason"] == "auth"


async def test_10_refused_gateway_key_with_nothing_else_is_a_502(tmp_path: Path) -> None:
    settings = {"num_retries": 2, "timeout": 30}
    secret = "sk-wrong-key-0123456789"
    async with FakeOpenAI() as only:
        models = [("solo", openai_params(only.url, api_key=secret))]
        async with users_shape(tmp_path, models=models, settings=settings) as shape:
            with pytest.raises(openai.APIStatusError) as raised:
                await shape.sdk(timeout=30).chat.completions.create(model="solo", messages=MESSAGES)
            error = raised.value
            assert not isinstance(error, openai.AuthenticationError)
            assert error.status_code == 502, error.status_code
            text = error.response.text
            assert "credential" in text.lower() or "key" in text.lower(), text
            assert secret not in text and "0123456789" not in text
            assert "invalid_api_key" not in text
            assert len(only.requests) == 1


async def test_9_json_mode_on_anthropic_by_forced_tool(tmp_path: Path) -> None:
    """The documented translation: ``response_format`` json_object on Anthropic answers JSON."""
    async with anthropic_fake() as claude:
        models = [("claude", anthropic_params(claude.url))]
        settings = {"num_retries": 2, "timeout": 30}
        async with users_shape(tmp_path, models=models, settings=settings) as shape:
            client = shape.sdk(timeout=30)
            reply = await client.chat.completions.create(
                model="claude", messages=MESSAGES, response_format={"type": "json_object"}
            )
            json.loads(reply.choices[0].message.content or "")
            assert len(claude.requests) == 1
            sent = claude.requests[0].json
            assert sent.get("tools") and sent.get("tool_choice", {}).get("type") == "tool", sent
            text = await streamed_text(client, "claude", response_format={"type": "json_object"})
            json.loads(text)


# ---- the same faults in a group of several deployments ------------------------------------------


async def test_7_group_rate_limited_deployment_answered_now_by_its_sibling(
    tmp_path: Path,
) -> None:
    async with FakeOpenAI() as one, FakeOpenAI() as two:
        models = [("group", openai_params(one.url)), ("group", openai_params(two.url))]
        settings = {"num_retries": 2, "timeout": 30}
        async with users_shape(tmp_path, models=models, settings=settings) as shape:
            client = shape.sdk(timeout=30)
            for _ in range(4):
                one.enqueue(Fault.rate_limited(retry_after=2))
                watch = Stopwatch()
                reply = await client.chat.completions.create(model="group", messages=MESSAGES)
                assert reply.choices[0].message.content == ANSWER
                assert watch.elapsed < 1.5, f"a 429 with a sibling idle held {watch.elapsed:.1f} s"
                one.reset()
            await asyncio.sleep(2.2)
            # both limited: nothing else can answer, so wait as long as asked and no longer
            one.enqueue(Fault.rate_limited(retry_after=1))
            two.enqueue(Fault.rate_limited(retry_after=1))
            watch = Stopwatch()
            reply = await client.chat.completions.create(model="group", messages=MESSAGES)
            assert reply.choices[0].message.content == ANSWER
            assert 0.8 < watch.elapsed < 3, watch.elapsed


async def test_2_group_silent_deployment_left_for_its_sibling(tmp_path: Path) -> None:
    async with FakeOpenAI() as one, FakeOpenAI() as two:
        models = [("group", openai_params(one.url)), ("group", openai_params(two.url))]
        settings = {"num_retries": 2, "timeout": 30}
        async with users_shape(tmp_path, models=models, settings=settings) as shape:
            client = shape.sdk(timeout=30)
            # Enough for each deployment's ten samples, whichever way the picks fall.
            for _ in range(48):
                await client.chat.completions.create(model="group", messages=MESSAGES)
            one.set_default(Fault("hang"))
            two.set_default(None)
            for _ in range(3):
                watch = Stopwatch()
                reply = await client.chat.completions.create(model="group", messages=MESSAGES)
                assert reply.choices[0].message.content == ANSWER
                assert watch.elapsed < 25
