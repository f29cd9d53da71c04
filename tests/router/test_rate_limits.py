"""A 429 waits only when nothing else can answer, and only as long as the provider asked."""

from __future__ import annotations

import pytest

from harness import Harness, chat, dep
from turnout import FallbackConfig, RetryConfig
from turnout.errors import RateLimitError, ServerError
from turnout.health.events import CooldownEntered
from turnout.observe.events import FallbackTaken, RetryScheduled

#: The shape most configs have: one deployment per model, a general fallback list.
ONE_PER_MODEL = FallbackConfig(general={"chat": ["spare"]})


def _limited(retry_after: float | None = None) -> RateLimitError:
    return RateLimitError("slow down", status=429, retry_after=retry_after)


@pytest.mark.parametrize("retry_after", [2.0, 7.0, None])
async def test_a_429_on_the_only_deployment_goes_to_the_fallback_at_once(
    h: Harness, retry_after: float | None
) -> None:
    router = h.router(dep("a"), dep("b", group="spare"), fallbacks=ONE_PER_MODEL)
    h.scripted.fail("a", _limited(retry_after))
    response = await router.complete(chat())
    assert response.deployment.id == "b"
    assert [a.deployment_id for a in response.attempts] == ["a", "b"]
    assert h.clock.now() == 0.0  # no waiting
    assert h.recorder.of(RetryScheduled) == []
    assert [(e.from_group, e.to_group) for e in h.recorder.of(FallbackTaken)] == [("chat", "spare")]


async def test_the_primary_is_back_after_its_retry_after_not_the_default_cooldown(
    h: Harness,
) -> None:
    router = h.router(dep("a"), dep("b", group="spare"), fallbacks=ONE_PER_MODEL)
    h.scripted.fail("a", _limited(2.0))
    assert (await router.complete(chat())).deployment.id == "b"
    assert [(e.deployment_id, e.seconds) for e in h.recorder.of(CooldownEntered)] == [("a", 2.0)]
    h.clock.advance(1.9)
    assert (await router.complete(chat())).deployment.id == "b"  # still cooling
    h.clock.advance(0.2)
    response = await router.complete(chat())
    assert response.deployment.id == "a"
    assert h.scripted.calls == ["a", "b", "b", "a"]


async def test_a_429_without_retry_after_keeps_the_default_cooldown(h: Harness) -> None:
    router = h.router(dep("a"), dep("b", group="spare"), fallbacks=ONE_PER_MODEL)
    h.scripted.fail("a", _limited())
    assert (await router.complete(chat())).deployment.id == "b"
    assert [(e.deployment_id, e.seconds) for e in h.recorder.of(CooldownEntered)] == [("a", 5.0)]


async def test_with_nothing_else_the_wait_is_what_the_provider_asked(h: Harness) -> None:
    router = h.router(dep("a"))
    h.scripted.fail("a", _limited(2.0))
    response = await router.complete(chat())
    assert [a.deployment_id for a in response.attempts] == ["a", "a"]
    assert [e.delay for e in h.recorder.of(RetryScheduled)] == [2.0]
    assert h.clock.now() == pytest.approx(2.0)  # not the 5 s default cooldown


async def test_a_second_429_waits_again_only_as_asked(h: Harness) -> None:
    router = h.router(dep("a"))
    h.scripted.fail("a", _limited(2.0), _limited(3.0))
    response = await router.complete(chat())
    assert [a.deployment_id for a in response.attempts] == ["a", "a", "a"]
    assert [e.delay for e in h.recorder.of(RetryScheduled)] == [2.0, 3.0]
    assert h.clock.now() == pytest.approx(5.0)


async def test_when_the_fallback_cannot_answer_now_the_request_waits_for_the_primary(
    h: Harness,
) -> None:
    router = h.router(dep("a"), dep("b", group="spare"), fallbacks=ONE_PER_MODEL)
    await router.cool_down("b", 60)
    h.scripted.fail("a", _limited(2.0))
    response = await router.complete(chat())
    assert response.deployment.id == "a"
    assert h.scripted.calls == ["a", "a"]
    assert h.clock.now() == pytest.approx(2.0)


async def test_a_fallback_already_visited_does_not_count_as_an_answer(h: Harness) -> None:
    router = h.router(
        dep("a"),
        dep("b", group="spare"),
        fallbacks=FallbackConfig(general={"chat": ["spare"], "spare": ["chat"]}),
        retries=RetryConfig(num_retries=1),
    )
    # "chat" fails over to "spare", whose 429 must not bounce back to "chat" (visited): the
    # request waits for "spare" as asked.
    h.scripted.fail("a", ServerError("down", status=503), ServerError("down", status=503))
    h.scripted.fail("b", _limited(1.0))
    response = await router.complete(chat())
    assert response.deployment.id == "b"
    assert h.scripted.calls == ["a", "a", "b", "b"]
    assert h.clock.now() == pytest.approx(1.0, abs=0.3)


async def test_in_a_group_another_deployment_answers_before_any_fallback(h: Harness) -> None:
    router = h.router(dep("a"), dep("a2"), dep("b", group="spare"), fallbacks=ONE_PER_MODEL)
    h.scripted.fail("a", _limited(7.0))
    h.scripted.fail("a2", _limited(7.0))
    response = await router.complete(chat())
    first, second, third = (a.deployment_id for a in response.attempts)
    assert {first, second} == {"a", "a2"} and third == "b"
    assert [e.delay for e in h.recorder.of(RetryScheduled)] == [0.0]
    assert h.clock.now() == 0.0


async def test_a_wait_past_the_deadline_is_not_started_without_a_fallback(h: Harness) -> None:
    h.router(dep("a"))
    h.scripted.fail("a", _limited(7.0))
    request = chat()
    request.timeout = 5
    error = await h.failure(request)
    assert isinstance(error, RateLimitError)
    assert h.clock.now() == 0.0
    assert h.scripted.calls == ["a"]
