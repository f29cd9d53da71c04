"""The clean path's pipelined connection, against the session's real redis-server, on asyncio's
event loop and on uvloop's (the one `turnout serve` runs): answers in order whatever the
concurrency, scripts the server forgot, callers that give up, a slow or vanished server, and
logging in with a user and password."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import redis.asyncio as redis_client
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from turnout.redisio.pipe import Endpoint, Pipe, Script

pytestmark = pytest.mark.services

ECHO = Script("return {ARGV[1], redis.call('INCR', KEYS[1])}")


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """Runs a coroutine to its end on the parametrized event loop."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        yield runner.run


def _endpoint(server: Any, **fields: Any) -> Endpoint:
    return Endpoint(port=server.port, **fields)


async def _raw(server: Any, *command: Any) -> Any:
    async with redis_client.from_url(server.url) as client:
        return await client.execute_command(*command)  # type: ignore[no-untyped-call]


def test_concurrent_calls_get_their_own_answers(redis_server: Any, run: Any) -> None:
    async def scenario() -> None:
        pipe = Pipe(_endpoint(redis_server), 2.0, 2.0)
        answers = await asyncio.gather(
            *(pipe.run(ECHO, ["pipe:n"], [f"call-{i}"]) for i in range(300))
        )
        assert [a[0] for a in answers] == [f"call-{i}".encode() for i in range(300)]
        # Each ran exactly once, in the order sent.
        counts = [a[1] for a in answers]
        assert counts == list(range(counts[0], counts[0] + 300))
        await pipe.aclose()

    redis_server.flush()
    run(scenario())


def test_a_script_the_server_forgot_is_sent_in_full(redis_server: Any, run: Any) -> None:
    async def scenario() -> None:
        pipe = Pipe(_endpoint(redis_server), 2.0, 2.0)
        assert (await pipe.run(ECHO, ["pipe:k"], ["x"]))[0] == b"x"
        await _raw(redis_server, "SCRIPT", "FLUSH")  # a restart, or a promoted replica
        assert (await pipe.run(ECHO, ["pipe:k"], ["y"]))[0] == b"y"
        await pipe.aclose()

    run(scenario())


def test_an_error_reply_is_a_response_error(redis_server: Any, run: Any) -> None:
    async def scenario() -> None:
        pipe = Pipe(_endpoint(redis_server), 2.0, 2.0)
        with pytest.raises(ResponseError, match="refused here"):
            await pipe.run(Script("return redis.error_reply('refused here')"), [], [])
        assert (await pipe.run(ECHO, ["pipe:e"], ["after"]))[0] == b"after"
        await pipe.aclose()

    run(scenario())


def test_a_caller_that_gives_up_leaves_the_line_in_step(redis_server: Any, run: Any) -> None:
    async def scenario() -> None:
        pipe = Pipe(_endpoint(redis_server), 2.0, 2.0)
        await pipe.run(ECHO, ["pipe:c"], ["open"])
        abandoned = asyncio.ensure_future(pipe.run(ECHO, ["pipe:c"], ["abandoned"]))
        await asyncio.sleep(0)  # sent, not yet answered
        abandoned.cancel()
        answers = await asyncio.gather(*(pipe.run(ECHO, ["pipe:c"], [str(i)]) for i in range(5)))
        assert [a[0] for a in answers] == [str(i).encode() for i in range(5)]
        await pipe.aclose()

    run(scenario())


def test_a_slow_server_times_out_and_the_next_call_reconnects(redis_server: Any, run: Any) -> None:
    async def scenario() -> None:
        pipe = Pipe(_endpoint(redis_server), 0.1, 2.0)
        await pipe.run(ECHO, ["pipe:s"], ["warm"])
        await _raw(redis_server, "CLIENT", "PAUSE", "400", "ALL")
        waiting = [pipe.run(ECHO, ["pipe:s"], [str(i)]) for i in range(3)]
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(o, TimeoutError) for o in outcomes), outcomes
        await asyncio.sleep(0.4)  # the pause is over
        assert (await pipe.run(ECHO, ["pipe:s"], ["back"]))[0] == b"back"
        await pipe.aclose()

    run(scenario())


def test_a_killed_connection_fails_its_calls_and_the_next_reconnects(
    redis_server: Any, run: Any
) -> None:
    async def scenario() -> None:
        pipe = Pipe(_endpoint(redis_server), 2.0, 2.0)
        await pipe.run(ECHO, ["pipe:x"], ["first"])
        await _raw(redis_server, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        for _ in range(50):  # the loss reaches the pipe on the loop's next turns
            try:
                answer = await pipe.run(ECHO, ["pipe:x"], ["again"])
            except RedisConnectionError:
                continue
            assert answer[0] == b"again"
            break
        else:
            pytest.fail("the pipe never reconnected")
        await pipe.aclose()

    run(scenario())


def test_it_logs_in_with_a_user_and_password(redis_server: Any, run: Any) -> None:
    async def scenario() -> None:
        await _raw(redis_server, "ACL", "SETUSER", "pipe-user", "on", ">pipe-pass", "~*", "+@all")
        try:
            good = Pipe(_endpoint(redis_server, username="pipe-user", password="pipe-pass"), 2, 2)
            assert (await good.run(ECHO, ["pipe:a"], ["in"]))[0] == b"in"
            await good.aclose()
            bad = Pipe(_endpoint(redis_server, username="pipe-user", password="wrong"), 2, 2)
            with pytest.raises(ResponseError) as refused:
                await bad.run(ECHO, ["pipe:a"], ["in"])
            assert "wrong" not in str(refused.value)
            await bad.aclose()
        finally:
            await _raw(redis_server, "ACL", "DELUSER", "pipe-user")

    run(scenario())


def test_it_selects_the_database(redis_server: Any, run: Any) -> None:
    async def scenario() -> None:
        pipe = Pipe(_endpoint(redis_server, db=3), 2.0, 2.0)
        await pipe.run(Script("return redis.call('SET', KEYS[1], 'here')"), ["pipe:db"], [])
        await pipe.aclose()
        async with redis_client.from_url(redis_server.url.rsplit("/", 1)[0] + "/3") as client:
            assert await client.get("pipe:db") == b"here"

    run(scenario())
