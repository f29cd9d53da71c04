"""Ends a shared ledger could not take: kept, in order, until it answers again.

A shared ledger (Redis, or the store's database) that is away must not make a request's charge
disappear. Its end (a settle; a release is a settle of nothing) is kept in a bounded queue and
sent, oldest first, when the ledger answers again, and once more at close. Ends are idempotent
per ticket, so one whose first try landed but whose answer was lost charges once.

A request admitted by the in-process ledger while the shared one was away (failing open) held
nothing in the shared ledger; its charge is sent there too (`shared_charge`), so that the spend
of an outage is counted where every instance or worker sees it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from turnout.governance.ledger import Ticket

logger = logging.getLogger("turnout.governance")

#: Ends kept at most; past this many the oldest are dropped (and logged).
KEPT_LIMIT = 100_000

End = Callable[[Ticket, int, int], Awaitable[None]]


def shared_charge(ticket: Ticket) -> Ticket:
    """The ticket that charges the shared ledger for a request the in-process one admitted:
    nothing was held there for it, so ending it releases nothing and charges what was
    consumed."""
    ask = dataclasses.replace(ticket.ask, cost=0)
    held_nothing = (0,) * len(ticket.held_tokens)
    return dataclasses.replace(ticket, ask=ask, held_tokens=held_nothing, shared=True)


class KeptEnds:
    """The ends waiting for a shared ledger (`where` names it in logs)."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._ends: deque[tuple[Ticket, int, int]] = deque()
        #: Ends lost because the queue overflowed during an outage.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._ends)

    def keep(self, ticket: Ticket, cost: int, tokens: int) -> None:
        if len(self._ends) >= KEPT_LIMIT:
            self._ends.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                logger.error(
                    "governance: %d ends kept for %s dropped so far (the queue is full)",
                    self.dropped,
                    self._where,
                )
        self._ends.append((ticket, cost, tokens))

    async def send(self, end: End, away: type[BaseException]) -> None:
        """Send the kept ends with `end`, oldest first; stop, keeping the rest, at the first
        that finds the ledger `away` again."""
        try:
            while self._ends:
                ticket, cost, tokens = self._ends[0]
                await end(ticket, cost, tokens)
                self._ends.popleft()
        except away:
            pass

    def report_unsent(self) -> None:
        """At close: say how many ends never reached the ledger."""
        if self._ends:
            logger.error("governance: %d ends never reached %s", len(self._ends), self._where)
