"""What the gateway learns about one HTTP request while serving it, for its answer and its logs.

The error middleware makes one `Exchange` per request before the handler runs; the handler
fills in what it learns (the route, the caller, the model asked, the group, when the caller
stops waiting, how a stream went), and the middleware reads it back to answer an error with
what is known and to report the request (`turnout.observe.events.HttpRequestFinished`).
"""

from __future__ import annotations

from aiohttp import web

from turnout.gateway.request_ids import RequestIds, ids_of
from turnout.wire import Principal


class Exchange:
    """One HTTP request's facts, filled in as they become known."""

    __slots__ = (
        "answer",
        "deadline",
        "error",
        "first_byte",
        "ids",
        "messages",
        "model",
        "model_group",
        "principal",
        "route",
        "stream",
    )

    def __init__(self, ids: RequestIds) -> None:
        self.ids = ids
        #: The route's name, on routed paths (``chat_completions``...); None elsewhere.
        self.route: str | None = None
        self.principal: Principal | None = None
        #: The model name asked for, once the body was read.
        self.model: str | None = None
        self.model_group: str | None = None
        self.stream = False
        #: Seconds to a stream's first byte.
        self.first_byte: float | None = None
        #: When the caller stops waiting (`time.perf_counter`), for the retry advice of an error.
        self.deadline: float | None = None
        #: The failure kind of a stream that broke after it began.
        self.error: str | None = None
        #: With content capture only: the request's messages (or prompt, or input) and the
        #: answer's text.
        self.messages: object = None
        self.answer: str | None = None


EXCHANGE = web.RequestKey("exchange", Exchange)


def exchange_of(request: web.Request) -> Exchange:
    """The request's `Exchange`, made (with its ids) the first time it is asked for."""
    exchange = request.get(EXCHANGE)
    if exchange is None:
        exchange = request[EXCHANGE] = Exchange(ids_of(request))
    return exchange
