"""Recovery: a flapping deployment is routed around, probed a bounded number of times, and back
in rotation within seconds of recovering; a slow tail is hedged (see `fault_rig`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fault_rig import ANSWER, SHAPES, Rig, Shape, chats, rig

from fakes.fake_openai import Fault
from turnout import HealthConfig
from turnout.config.router import HedgeConfig

#: The cooldown the user set in this scenario (LiteLLM's ``cooldown_time``), short so that the
#: scenario is quick; the ejection policy scales from it.
COOLDOWN = 0.5


async def outage(r: Rig, seconds: float, every: float = 0.05) -> tuple[int, int]:
    """The primary down for `seconds` while requests keep coming: every one is answered.
    Returns (requests made, calls the primary saw meanwhile)."""
    seen = len(chats(r.primary))
    r.primary.set_default(Fault.unavailable())
    ends = time.monotonic() + seconds
    made = 0
    while time.monotonic() < ends:
        answer = await r.ask()
        assert answer.text == ANSWER
        made += 1
        await asyncio.sleep(every)
    return made, len(chats(r.primary)) - seen


async def back_after(r: Rig, limit: float, every: float = 0.05) -> float:
    """The primary recovers now: seconds until it serves a request again (at most `limit`)."""
    r.primary.set_default(None)
    recovered = time.monotonic()
    while time.monotonic() - recovered < limit:
        answer = await r.ask()
        assert answer.text == ANSWER
        if answer.deployment == "chat":
            return time.monotonic() - recovered
        await asyncio.sleep(every)
    raise AssertionError(f"the recovered primary was not back in rotation within {limit:g}s")


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_flapping_primary_is_routed_around_and_back_within_seconds(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(
        shape,
        tmp_path,
        group_settings={"health": HealthConfig(cooldown_time=COOLDOWN)},
        litellm_settings={"cooldown_time": COOLDOWN},
    ) as r:
        for _ in range(2):
            made, probed = await outage(r, 1.0)
            # Routed around, probed a bounded number of times: at most once per ejection (each
            # at least the cooldown long) beyond the calls that ejected it, however few
            # requests a loaded machine managed to make meanwhile.
            assert probed <= max(made // 2, int(1.0 / COOLDOWN)) + 3
            assert await back_after(r, 3.0) < 3.0
            # Back in rotation, not a single lucky probe.
            served = [(await r.ask()).deployment for _ in range(5)]
            assert served == ["chat"] * 5
        await r.healthy()


async def test_hedging_rescues_a_slow_upstream_in_a_group(tmp_path: Path) -> None:
    # Hedging is turnout's own, for a group of several deployments; LiteLLM has no such key.
    hedging = {"chat": HedgeConfig(delay=0.2, budget=1.0)}
    async with rig("group", tmp_path, group_settings={"hedging": hedging}) as r:
        r.primary.enqueue(Fault("delay", seconds=3))
        answer = await r.ask()
        assert (answer.text, answer.deployment) == (ANSWER, "spare")
        assert answer.elapsed < 1.5
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)
        await r.healthy()
