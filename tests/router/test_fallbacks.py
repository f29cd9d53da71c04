"""Fallbacks between model groups, by kind of failure."""

from __future__ import annotations

from harness import Harness, chat, dep
from turnout import FallbackConfig, RetryConfig
from turnout.errors import (
    AuthenticationError,
    ContentPolicyError,
    ContextWindowExceededError,
    RateLimitError,
    ServerError,
)
from turnout.observe.events import FallbackTaken
from turnout.testing import Behaviour

NO_RETRIES = RetryConfig(num_retries=0)


async def test_general_fallback_after_the_group_fails(h: Harness) -> None:
    router = h.router(
        dep("a"),
        dep("b", group="backup"),
        fallbacks=FallbackConfig(general={"chat": ["backup"]}),
        retries=NO_RETRIES,
    )
    h.scripted.fail("a", ServerError("down", status=503))
    response = await router.complete(chat())
    assert response.deployment.id == "b"
    assert [(e.from_group, e.to_group, e.kind.value) for e in h.recorder.of(FallbackTaken)] == [
        ("chat", "backup", "general")
    ]
    assert h.stats.fallbacks == 1


async def test_each_kind_uses_its_own_list(h: Harness) -> None:
    router = h.router(
        dep("a"),
        dep("long", group="long"),
        dep("lenient", group="lenient"),
        dep("spare", group="spare"),
        dep("general", group="general"),
        fallbacks=FallbackConfig(
            general={"chat": ["general"]},
            context_window={"chat": ["long"]},
            content_policy={"chat": ["lenient"]},
            rate_limit={"chat": ["spare"]},
        ),
        retries=NO_RETRIES,
    )
    cases = [
        (ContextWindowExceededError("too long", status=400), "long"),
        (ContentPolicyError("refused", status=400), "lenient"),
        (RateLimitError("slow", status=429), "spare"),
        (ServerError("down", status=500), "general"),
    ]
    for error, expected in cases:
        h.scripted.fail("a", error)
        assert (await router.complete(chat())).deployment.id == expected
        await router.lift_cooldown("a")


async def test_a_kind_without_a_list_uses_the_general_list(h: Harness) -> None:
    router = h.router(
        dep("a"),
        dep("b", group="backup"),
        fallbacks=FallbackConfig(general={"chat": ["backup"]}),
        retries=NO_RETRIES,
    )
    h.scripted.fail("a", ContextWindowExceededError("too long", status=400))
    assert (await router.complete(chat())).deployment.id == "b"


async def test_a_refusal_without_a_content_policy_list_does_not_fall_back(h: Harness) -> None:
    """The general list is not for refusals: the caller gets the provider's reason, and the
    request is neither retried nor sent anywhere else."""
    h.router(
        dep("a"),
        dep("a2"),
        dep("b", group="backup"),
        fallbacks=FallbackConfig(general={"*": ["backup"]}, context_window={"backup": ["chat"]}),
    )
    h.scripted.fail("a", ContentPolicyError("refused by the safety system", status=400))
    h.scripted.fail("a2", ContentPolicyError("refused by the safety system", status=400))
    error = await h.failure(chat())
    assert isinstance(error, ContentPolicyError)
    assert error.status == 400
    assert "refused by the safety system" in str(error)
    assert len(h.scripted.calls) == 1
    assert h.recorder.of(FallbackTaken) == []


async def test_a_refusal_goes_where_a_content_policy_list_says(h: Harness) -> None:
    router = h.router(
        dep("a"),
        dep("b", group="backup"),
        dep("lenient", group="lenient"),
        fallbacks=FallbackConfig(general={"chat": ["backup"]}, content_policy={"*": ["lenient"]}),
    )
    h.scripted.fail("a", ContentPolicyError("refused", status=400))
    response = await router.complete(chat())
    assert response.deployment.id == "lenient"
    assert h.scripted.calls == ["a", "lenient"]


async def test_wildcard_fallbacks_apply_to_every_group(h: Harness) -> None:
    router = h.router(
        dep("a"),
        dep("b", group="backup"),
        fallbacks=FallbackConfig(general={"*": ["backup"]}),
        retries=NO_RETRIES,
    )
    h.scripted.fail("a", ServerError("down", status=500))
    assert (await router.complete(chat())).deployment.id == "b"


async def test_every_group_in_the_list_is_tried_in_order(h: Harness) -> None:
    router = h.router(
        dep("a"),
        dep("b", group="first"),
        dep("c", group="second"),
        fallbacks=FallbackConfig(general={"chat": ["first", "second"]}),
        retries=NO_RETRIES,
    )
    h.scripted.fail("a", ServerError("down", status=500))
    h.scripted.fail("b", ServerError("down", status=500))
    response = await router.complete(chat())
    assert [a.deployment_id for a in response.attempts] == ["a", "b", "c"]


async def test_depth_is_bounded_and_cycles_do_not_loop(h: Harness) -> None:
    h.router(
        dep("a"),
        dep("b", group="g1"),
        dep("c", group="g2"),
        dep("d", group="g3"),
        fallbacks=FallbackConfig(
            general={"chat": ["g1"], "g1": ["g2", "chat"], "g2": ["g3", "g1"], "g3": ["chat"]},
            max_depth=2,
        ),
        retries=NO_RETRIES,
    )
    for name in "abcd":
        h.scripted.fail(name, *[ServerError(f"{name} down", status=500)] * 3)
    error = await h.failure(chat())
    assert isinstance(error, ServerError)
    assert h.scripted.calls == ["a", "b", "c"]


async def test_caller_errors_never_fall_back(h: Harness) -> None:
    from turnout.errors import BadRequestError

    h.router(
        dep("a"),
        dep("b", group="backup"),
        fallbacks=FallbackConfig(general={"chat": ["backup"]}),
    )
    h.scripted.fail("a", BadRequestError("temperature must be <= 2", status=400))
    error = await h.failure(chat())
    assert isinstance(error, BadRequestError)
    assert h.scripted.calls == ["a"]


async def test_the_most_informative_error_reaches_the_caller(h: Harness) -> None:
    h.router(
        dep("a"),
        dep("b", group="backup"),
        fallbacks=FallbackConfig(general={"chat": ["backup"]}),
        retries=NO_RETRIES,
    )
    h.scripted.fail("a", AuthenticationError("the key for a is wrong", status=401))
    h.sim.set_behaviour("b", Behaviour(error_rate=1, errors={"connection": 1}))
    error = await h.failure(chat())
    assert isinstance(error, AuthenticationError)
    assert len(error.attempts) == 2


async def test_all_cooling_from_rate_limits_takes_the_rate_limit_fallback(h: Harness) -> None:
    router = h.router(
        dep("a"),
        dep("b", group="spare"),
        fallbacks=FallbackConfig(rate_limit={"chat": ["spare"]}),
        retries=NO_RETRIES,
    )
    h.scripted.fail("a", RateLimitError("slow", status=429, retry_after=30))
    assert (await router.complete(chat())).deployment.id == "b"
    # Now "a" is cooling down for a rate limit: the next request goes straight to "spare".
    response = await router.complete(chat())
    assert response.deployment.id == "b"
    assert [a.deployment_id for a in response.attempts] == ["b"]
