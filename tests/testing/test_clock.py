from __future__ import annotations

import asyncio

import pytest

from turnout.clock import SystemClock
from turnout.testing.clock import ManualClock


async def test_sleep_jumps_in_virtual_time() -> None:
    clock = ManualClock()
    await clock.sleep(30)
    assert clock.now() == 30
    assert clock.wall() == clock.wall() - clock.now() + 30


async def test_concurrent_sleepers_wake_in_order_of_their_deadlines() -> None:
    clock = ManualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    await asyncio.gather(sleeper("slow", 3), sleeper("fast", 1), sleeper("mid", 2))
    assert woke == [("fast", 1), ("mid", 2), ("slow", 3)]
    assert clock.now() == 3


async def test_timeout_at_cancels_the_block_at_the_deadline() -> None:
    clock = ManualClock()
    with pytest.raises(TimeoutError):
        async with clock.timeout_at(5):
            await clock.sleep(10)
    assert clock.now() == 5


async def test_timeout_that_does_not_fire_leaves_the_block_alone() -> None:
    clock = ManualClock()
    async with clock.timeout_at(5):
        await clock.sleep(1)
    await clock.sleep(10)  # the cancelled deadline must not fire later
    assert clock.now() == 11


async def test_nested_timeouts_the_inner_fires_first() -> None:
    clock = ManualClock()
    async with clock.timeout_at(10):
        with pytest.raises(TimeoutError):
            async with clock.timeout_at(2):
                await clock.sleep(5)
        await clock.sleep(1)
    assert clock.now() == 3


async def test_nested_timeouts_the_outer_fires_through_the_inner() -> None:
    clock = ManualClock()
    inner_saw_timeout = False
    with pytest.raises(TimeoutError):
        async with clock.timeout_at(2):
            try:
                async with clock.timeout_at(10):
                    await clock.sleep(5)
            except TimeoutError:
                inner_saw_timeout = True
    assert not inner_saw_timeout
    assert clock.now() == 2


async def test_advance_by_hand_without_autojump() -> None:
    clock = ManualClock(autojump=False)
    task = asyncio.create_task(clock.sleep(5))
    await asyncio.sleep(0)
    clock.advance(4)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(1)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert task.done()


def test_time_never_goes_back() -> None:
    with pytest.raises(ValueError, match="forward"):
        ManualClock().advance(-1)


async def test_system_clock_times_out_for_real_with_short_limits() -> None:
    clock = SystemClock()
    with pytest.raises(TimeoutError):
        async with clock.timeout_at(clock.now() + 0.01):
            await clock.sleep(1)


async def test_a_block_that_moves_the_clock_past_its_own_deadline_is_not_cancelled() -> None:
    clock = ManualClock(autojump=False)
    async with clock.timeout_at(5):
        clock.advance(10)
    await asyncio.sleep(0)  # no stray cancellation is left behind
    assert clock.now() == 10


async def test_system_deadlines_fire_in_order_among_many_finished_ones() -> None:
    clock = SystemClock()
    for _ in range(10_000):  # finished requests: their entries must not pile up or fire
        async with clock.timeout_at(clock.now() + 600):
            pass
    fired: list[str] = []

    async def waits(name: str, seconds: float) -> None:
        try:
            async with clock.timeout_at(clock.now() + seconds):
                await asyncio.sleep(5)
        except TimeoutError:
            fired.append(name)

    await asyncio.gather(waits("late", 0.06), waits("early", 0.02), waits("middle", 0.04))
    assert fired == ["early", "middle", "late"]
    from turnout.clock import _heap_of

    assert len(_heap_of(asyncio.get_running_loop())._entries) < 5000  # compacted
