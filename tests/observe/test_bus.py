"""The event bus: order, isolation of observers, failures logged once and without their text,
and no events built at all for a router nobody observes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, get_args

import pytest

from harness import Harness, Recorder, chat, dep
from turnout import Router, RouterConfig
from turnout.observe.bus import Bus
from turnout.observe.events import (
    AttemptFinished,
    AttemptStarted,
    BudgetExhausted,
    Event,
    RequestFinished,
    RequestStarted,
)

SECRET = "sk-live-Q8vX2mN5pR7tK1wZ"
EVENT_TYPES: tuple[type, ...] = get_args(Event)


class Broken:
    """An observer that raises on every event, with a secret in its exception's message."""

    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, event: Event) -> None:
        self.calls += 1
        raise RuntimeError(f"observer bug while holding {SECRET}")


def budget(request_id: str = "r1") -> BudgetExhausted:
    return BudgetExhausted(request_id, "chat", "retry")


def started(request_id: str = "r1") -> RequestStarted:
    return RequestStarted(request_id, "chat", None, 0.0, False)


def test_every_observer_gets_each_event_in_subscription_order_before_the_next() -> None:
    seen: list[tuple[str, Event]] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def on_event(self, event: Event) -> None:
            seen.append((self.name, event))

    bus = Bus([Named("first"), Named("second")])
    bus.subscribe(Named("third"))
    one, two = started(), budget()
    bus.emit(one)
    bus.emit_all([two])
    assert seen == [
        ("first", one),
        ("second", one),
        ("third", one),
        ("first", two),
        ("second", two),
        ("third", two),
    ]


def test_an_observer_naming_its_events_gets_only_those_through_their_handlers_in_order() -> None:
    seen: list[tuple[str, Event]] = []

    class Routed:
        """Handles RequestStarted and BudgetExhausted only; its `on_event` must not be called."""

        def __init__(self) -> None:
            self.event_handlers = {
                RequestStarted: lambda event: seen.append(("routed started", event)),
                BudgetExhausted: self._budget,
            }

        def _budget(self, event: BudgetExhausted) -> None:
            seen.append(("routed budget", event))
            raise RuntimeError(f"handler bug while holding {SECRET}")

        def on_event(self, event: Event) -> None:
            raise AssertionError("the bus calls the handlers, not on_event")

    class Plain:
        def on_event(self, event: Event) -> None:
            seen.append(("plain", event))

    bus = Bus([Plain(), Routed()])
    one, two, three = started(), budget(), RequestFinished("r1", "chat", None, 1.0)
    for event in (one, two, three):
        bus.emit(event)
    late = Plain()
    bus.subscribe(late)  # the routes are worked out again: the newcomer gets the next events
    bus.emit(one)
    assert seen == [
        ("plain", one),
        ("routed started", one),
        ("plain", two),
        ("routed budget", two),
        ("plain", three),
        ("plain", one),
        ("routed started", one),
        ("plain", one),
    ]
    assert bus.failures == 1  # the raising handler is isolated like any observer


def test_an_empty_bus_is_inactive_until_an_observer_subscribes() -> None:
    assert [Bus().active, Bus([Recorder()]).active] == [False, True]
    bus = Bus()
    bus.emit(started())  # harmless
    recorder = Recorder()
    bus.subscribe(recorder)
    assert bus.active
    assert bus.observers == (recorder,)
    bus.emit(started())
    assert len(recorder.events) == 1


def test_a_failing_observer_stops_neither_the_others_nor_the_emitter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before, broken, after = Recorder(), Broken(), Recorder()
    bus = Bus([before, broken, after])
    events: list[Event] = [started("r1"), budget("r1"), started("r2")]
    for event in events:
        bus.emit(event)
    assert before.events == after.events == events
    assert broken.calls == 3
    assert bus.failures == 3


def test_each_kind_of_failure_is_logged_once_by_type_names_without_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bus = Bus([Broken()])
    for _ in range(5):
        bus.emit(started())
    bus.emit(budget())
    records = [r for r in caplog.records if r.name == "turnout.observe"]
    assert len(records) == 2  # one per event type, however often it failed
    assert records[0].levelno == logging.ERROR
    first = records[0].getMessage()
    assert "Broken" in first and "RequestStarted" in first and "RuntimeError" in first
    assert "test_bus.py" in first  # where it failed, to find the bug
    assert "BudgetExhausted" in records[1].getMessage()
    assert SECRET not in caplog.text
    assert all(r.exc_info is None for r in records)
    assert bus.failures == 6


@contextmanager
def events_built() -> Iterator[list[str]]:
    """Names of the event types constructed while the block runs (in this thread)."""
    built: list[str] = []

    def profile(frame: FrameType, what: str, arg: Any) -> None:
        if what == "call" and frame.f_code.co_name == "__init__":
            target = frame.f_locals.get("self")
            if isinstance(target, EVENT_TYPES):
                built.append(type(target).__name__)

    sys.setprofile(profile)
    try:
        yield built
    finally:
        sys.setprofile(None)


async def test_a_router_nobody_observes_builds_no_events(h: Harness) -> None:
    router = Router(RouterConfig(model_list=(dep("a"), dep("b"))), {"sim": h.sim}, clock=h.clock)
    assert not router.bus.active
    with events_built() as built:
        await router.complete(chat())
        stream = await router.stream(chat(stream=True))
        async for _ in stream:
            pass
    assert built == []
    router.bus.subscribe(Recorder())
    with events_built() as built:
        await router.complete(chat())
    assert built[0] == "RequestStarted"
    assert {"AttemptStarted", "AttemptFinished", "RequestFinished"} <= set(built)


async def test_a_failing_observer_never_fails_a_request_nor_hides_its_events(h: Harness) -> None:
    recorder = Recorder()
    router = Router(
        RouterConfig(model_list=(dep("a"),)),
        {"sim": h.sim},
        clock=h.clock,
        observers=[Broken(), recorder],
    )
    assert (await router.complete(chat())).deployment.id == "a"
    assert [type(e) for e in recorder.events] == [
        RequestStarted,
        AttemptStarted,
        AttemptFinished,
        RequestFinished,
    ]
    assert router.bus.failures == 4
