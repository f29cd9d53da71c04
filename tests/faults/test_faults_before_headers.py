"""Faults before the upstream sent anything, in both shapes (see `fault_rig`).

Each scenario checks what the client got (the right answer, or a clean bounded error with the
right status, type and ``x-should-retry`` advice), how many calls each fake saw and when, and
that the gateway is healthy afterwards.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fault_rig import ANSWER, LEAVE_WITHIN, SHAPES, Shape, arrivals, chats, rig, within

from fakes.fake_openai import Fault

pytestmark = pytest.mark.parametrize("shape", SHAPES)


async def test_429_with_retry_after_is_answered_elsewhere_at_once_and_honoured(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault.rate_limited(retry_after=2))
        limited_at = time.monotonic()
        answer = await r.ask()
        assert (answer.text, answer.deployment) == (ANSWER, "spare")
        assert answer.elapsed < 1.0  # no wait while something else can answer
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)
        # Cooling down as long as the provider asked, not the longer default.
        assert 1.0 < (await r.deployment("chat"))["cooldown_seconds_left"] <= 2.0
        assert (await r.ask()).deployment == "spare"
        assert len(chats(r.primary)) == 1  # left alone while it asked to be
        await asyncio.sleep(max(0.0, limited_at + 2.1 - time.monotonic()))
        assert (await r.ask()).deployment == "chat"  # back once the wait is over
        [_, again] = chats(r.primary)
        assert again.received_at - limited_at >= 2.0
        await r.healthy()


async def test_429_without_retry_after_goes_elsewhere_at_once(shape: Shape, tmp_path: Path) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault.rate_limited())
        answer = await r.ask()
        assert (answer.text, answer.deployment) == (ANSWER, "spare")
        assert answer.elapsed < 1.0
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)
        await r.healthy()


async def test_429_with_a_long_retry_after_does_not_hold_the_request(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault.rate_limited(retry_after=7))
        answer = await r.ask()
        assert (answer.text, answer.deployment) == (ANSWER, "spare")
        assert answer.elapsed < 1.0
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)
        assert 6.0 < (await r.deployment("chat"))["cooldown_seconds_left"] <= 7.0  # not doubled


async def test_429_on_a_stream_goes_elsewhere_before_anything_is_sent(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault.rate_limited(retry_after=2))
        streamed = await r.stream()
        assert (streamed.text, streamed.deployment) == (ANSWER, "spare")
        assert streamed.elapsed < 1.0
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)


@pytest.mark.parametrize("retry_after", [1.0, None], ids=["retry-after-1", "no-retry-after"])
async def test_429_with_nothing_else_up_waits_only_as_asked(
    shape: Shape, tmp_path: Path, retry_after: float | None
) -> None:
    async with rig(shape, tmp_path) as r:
        await r.gateway.gateway.router.cool_down("spare", 60)
        r.primary.enqueue(Fault.rate_limited(retry_after=retry_after))
        started = time.monotonic()
        answer = await r.ask()
        assert (answer.text, answer.deployment) == (ANSWER, "chat")
        first, second = arrivals(r.primary, started)
        if retry_after is not None:
            assert 0.95 <= second - first < 2.0  # the provider's 1 s, not the 5 s default
        else:
            assert 4.9 <= second - first < 6.5  # no hint: the default cooldown
        assert chats(r.spare) == []


async def test_429_on_a_deployment_alone_is_a_clean_bounded_429(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path, alone=True) as r:
        r.primary.set_default(Fault.rate_limited(retry_after=45))
        failed = await r.fails()
        assert failed.status == 429
        assert failed.elapsed < 2.0  # 45 s is past the caller's deadline: not waited out
        assert failed.should_retry == "false"  # nor by the SDK
        assert len(chats(r.primary)) == 1  # never hammered
        failed = await r.fails()  # while it cools down, it is not asked at all
        assert failed.status == 429
        assert "cooling down" in str(failed.error)
        assert failed.should_retry == "false"
        assert len(chats(r.primary)) == 1
        assert chats(r.spare) == []


async def test_500_once_is_retried_invisibly(shape: Shape, tmp_path: Path) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault.server_error())
        answer = await r.ask()
        assert answer.text == ANSWER
        assert answer.attempts == 2
        assert answer.elapsed < 1.5
        # Something else can answer now (the group's other deployment, or the fallback model):
        # it answers now, rather than the failed one after a backoff.
        assert answer.deployment == "spare"
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)
        assert (await r.ask()).deployment == "chat"  # one 500 takes nothing out
        await r.healthy()


async def test_persistent_503_is_routed_around_then_reported_cleanly(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.set_default(Fault.unavailable())
        for _ in range(6):
            answer = await r.ask()
            assert (answer.text, answer.deployment) == (ANSWER, "spare")
        # Taken out after its first failures (turnout's default rules: five requests a minute
        # before they judge, three failures allowed)...
        out_after = len(chats(r.primary))
        assert out_after <= 5
        for _ in range(4):
            assert (await r.ask()).deployment == "spare"
        assert len(chats(r.primary)) == out_after  # ...and left out since
        entry = await r.deployment("chat")
        assert entry["cooling_down"] or entry["breaker"] != "closed"
        r.spare.set_default(Fault.unavailable())
        seen = len(chats(r.primary)), len(chats(r.spare))
        failed = await within(LEAVE_WITHIN, r.fails(), "everything down")
        assert failed.status is not None and failed.status >= 500
        assert "attempt" in str(failed.error)
        # Bounded: a couple of attempts, no storm (the SDK does not repeat them on its own).
        assert len(chats(r.primary)) - seen[0] + len(chats(r.spare)) - seen[1] <= 4
        r.primary.set_default(None)
        r.spare.set_default(None)


async def test_connection_reset_before_headers_is_retried_elsewhere(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("reset"))
        answer = await r.ask()
        assert answer.text == ANSWER
        assert answer.elapsed < 1.5
        assert len(chats(r.primary)) + len(chats(r.spare)) == 2
        await r.healthy()


async def test_a_silent_upstream_is_left_and_not_retried(shape: Shape, tmp_path: Path) -> None:
    async with rig(shape, tmp_path) as r:
        await r.warm_up()
        r.primary.set_default(Fault("hang"))
        started = time.monotonic()
        answer = await within(LEAVE_WITHIN, r.ask(), "a silent upstream")
        assert (answer.text, answer.deployment) == (ANSWER, "spare")
        assert len(chats(r.primary)) == 1  # it timed out: not tried again for this request
        [moved_on] = arrivals(r.spare, started)
        assert moved_on < LEAVE_WITHIN
        r.primary.set_default(None)
        await r.healthy()


async def test_a_slow_first_token_is_left_before_anything_is_sent(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        await r.warm_up(stream=True)
        r.primary.enqueue(Fault("slow_first_token", seconds=20))
        streamed = await within(LEAVE_WITHIN, r.stream(), "a 20 s first token")
        assert streamed.text == ANSWER
        assert len(streamed.ids) == 1  # nothing of the slow attempt reached the client
        assert streamed.deployment == "spare"
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)
        await r.healthy(stream=True)


async def test_context_window_exceeded_goes_to_the_context_window_fallback(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault.context_length_exceeded())
        answer = await r.ask()
        assert (answer.text, answer.deployment) == (ANSWER, "long")
        assert len(chats(r.primary)) == 1  # never retried on the same model
        assert chats(r.spare) == []  # nor on another deployment of it, nor the general list
        await r.healthy()


async def test_content_policy_is_a_clean_400_not_retried_nor_routed(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault.content_policy())
        failed = await r.fails()
        assert failed.status == 400
        assert failed.code == "content_policy_violation"
        assert "safety system" in str(failed.error)  # the provider's reason
        assert (len(chats(r.primary)), len(chats(r.spare)), len(chats(r.long))) == (1, 0, 0)
        await r.healthy()


async def test_the_gateways_refused_key_fails_over(shape: Shape, tmp_path: Path) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.api_key = "sk-rotated"  # the key in the gateway's config is no longer valid
        answer = await r.ask()
        assert (answer.text, answer.deployment) == (ANSWER, "spare")
        assert len(chats(r.primary)) == 1  # a refused key is not tried again
        entry = await r.deployment("chat")
        assert entry["cooling_down"]
        assert entry["cooldown_reason"] == "auth"
        await r.healthy()


@pytest.mark.parametrize("alone", [False, True], ids=["spare-refused-too", "alone"])
async def test_the_gateways_refused_keys_with_nothing_else_are_a_502(
    shape: Shape, tmp_path: Path, alone: bool
) -> None:
    async with rig(shape, tmp_path, alone=alone) as r:
        r.primary.api_key = r.spare.api_key = "sk-rotated"
        failed = await r.fails()
        assert failed.status == 502  # the gateway's fault, not the caller's 401
        assert failed.code == "upstream_credentials_refused"
        assert "credentials" in str(failed.error)
        assert failed.should_retry == "false"
        assert "sk-fake" not in str(failed.error)
        assert len(chats(r.primary)) == 1
        assert len(chats(r.spare)) == (0 if alone else 1)


async def test_a_caller_deadline_is_met_with_the_sdk_retries_on(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.set_default(Fault("delay", seconds=5))
        r.spare.set_default(Fault("delay", seconds=5))
        failed = await r.fails(extra_headers={"x-turnout-timeout-ms": "400"})
        assert failed.status == 504
        assert failed.should_retry == "false"
        assert 0.35 < failed.elapsed < 1.5
        assert len(chats(r.primary)) <= 1
        assert len(chats(r.spare)) <= 1
        r.primary.set_default(None)
        r.spare.set_default(None)
        await r.healthy()


async def test_the_sdk_timeout_is_the_callers_deadline(shape: Shape, tmp_path: Path) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.set_default(Fault("delay", seconds=5))
        r.spare.set_default(Fault("delay", seconds=5))
        r.client = r.client.with_options(timeout=0.5)  # the SDK sends it along
        failed = await r.fails()
        # The gateway answers inside the caller's time, so the SDK does not time out and
        # retry on its own: one bounded error, not three attempts' worth.
        assert failed.status == 504
        assert failed.should_retry == "false"
        assert failed.elapsed < 1.0
        assert len(chats(r.primary)) <= 1
        assert len(chats(r.spare)) <= 1
