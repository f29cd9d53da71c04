"""The observer interface, and the bus that hands every event to every observer.

The router and the gateway emit through one `Bus`. It calls its observers inline, in the order
they subscribed, each event to all of them before the next event; observers must be cheap, so
anything slow (a network export, a database write) belongs behind a queue in the observer.

An observer that handles only some kinds of event says which (`RoutedObserver.event_handlers`):
the bus then calls the handler of each kind directly and skips the observer for the others, a
call and a chain of type tests fewer per event, for every event of every request.

Two promises keep observers from costing a request anything:

- **No observers, no cost.** `Bus.active` is the one emptiness guard: hot paths test it before
  they build an event, so a router nobody observes allocates no events at all.
- **Observers are isolated.** An observer that raises never stops the observers after it, nor
  the request that emitted. Each kind of failure (observer type, event type, exception type) is
  logged once, by type names and code locations only: never the exception's message or the
  event, whose text is not the bus's to judge safe. Later failures are counted in `failures`.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from turnout.observe.events import Event

logger = logging.getLogger("turnout.observe")

#: Distinct kinds of observer failure remembered as logged, at most (each is logged once).
_MAX_REPORTED = 256


class Observer(Protocol):
    """Receives every event emitted through the bus it subscribed to."""

    def on_event(self, event: Event) -> None: ...


class RoutedObserver(Observer, Protocol):
    """An observer that names the kinds of event it handles, and the handler of each; events
    of other kinds never reach it. Its `on_event` must do what its handlers do."""

    @property
    def event_handlers(self) -> Mapping[type[Any], Callable[[Any], None]]: ...


#: The handlers an event of one type goes to, in the observers' order.
_Route = tuple[Callable[[Any], None], ...]


class Bus:
    """Fans events out to observers; see the module docstring for its promises."""

    __slots__ = ("_observers", "_reported", "_routes", "active", "content", "details", "failures")

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self._observers: tuple[Observer, ...] = tuple(observers)
        #: Whether any observer listens: test it before building an event on a hot path.
        self.active = bool(self._observers)
        #: Whether an observer wants what an answer says of itself (its id, model and finish
        #: reasons) on `AttemptFinished`: decoded from the answer only then (tracing sets it).
        self.details = False
        #: Whether an observer wants the messages sent and received on the attempt events:
        #: only when content capture was explicitly configured, never by default.
        self.content = False
        #: Observer calls that raised, over the bus's life.
        self.failures = 0
        self._reported: set[tuple[type, type, type]] = set()
        #: Event type -> its handlers, worked out at the first event of each type.
        self._routes: dict[type[Any], _Route] = {}

    @property
    def observers(self) -> tuple[Observer, ...]:
        return self._observers

    def subscribe(self, observer: Observer) -> None:
        """Add an observer after the others; it receives the events emitted from now on."""
        self._observers = (*self._observers, observer)
        self._routes = {}
        self.active = True

    def emit(self, event: Event) -> None:
        """Hand `event` to every observer, in order; a failing observer fails nothing else."""
        route = self._routes.get(type(event))
        if route is None:
            route = self._route(type(event))
        for handle in route:
            try:
                handle(event)
            except Exception as exc:
                self._failed(self._owner(handle, type(event)), event, exc)

    def _route(self, kind: type[Any]) -> _Route:
        route = self._routes[kind] = tuple(
            handle for observer in self._observers if (handle := _handler(observer, kind))
        )
        return route

    def _owner(self, handle: Callable[[Any], None], kind: type[Any]) -> Observer:
        """The observer whose handler `handle` is (looked up on failures only)."""
        return next(o for o in self._observers if _handler(o, kind) == handle)

    def emit_all(self, events: Sequence[Event]) -> None:
        for event in events:
            self.emit(event)

    def _failed(self, observer: Observer, event: Event, exc: Exception) -> None:
        self.failures += 1
        kind = (type(observer), type(event), type(exc))
        if kind in self._reported or len(self._reported) >= _MAX_REPORTED:
            return
        self._reported.add(kind)
        frames = traceback.extract_tb(exc.__traceback__)[1:]  # the bus's own frame first
        where = " <- ".join(f"{f.filename}:{f.lineno} in {f.name}" for f in reversed(frames))
        logger.error(
            "observer %s failed on %s with %s at %s (logged once; the request went on)",
            type(observer).__qualname__,
            type(event).__name__,
            type(exc).__qualname__,
            where or "?",
        )


def _handler(observer: Observer, kind: type[Any]) -> Callable[[Any], None] | None:
    """What `observer` is called with for an event of type `kind`: the handler it names for
    it, none when it names handlers but not for it, else its `on_event`."""
    handlers: Mapping[type[Any], Callable[[Any], None]] | None = getattr(
        observer, "event_handlers", None
    )
    if handlers is None:
        return observer.on_event
    return handlers.get(kind)
