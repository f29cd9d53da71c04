"""Which budget-and-limits ledger a gateway process uses: the one place that decides.

- Routing state on Redis (``state: {backend: redis}``): `RedisLedger` on the same Redis, exact
  across workers and instances; it fails closed when Redis cannot be reached unless
  ``store.fail_open`` is set.
- Several workers without Redis (``server.workers`` above 1): `StoreLedger`, the SQL ledger in
  the store's database, exact across the workers of the instance (one transaction per
  operation); it fails closed likewise.
- One worker without Redis: `MemoryLedger`, exact for the process and the cheapest; budgets
  start from the spend recorded in the store (each budget's `seed`), so a restart loses none.

Holds last `store.hold_ttl` seconds unless renewed (streams renew theirs), so that the holds of
a crashed process come back after it.
"""

from __future__ import annotations

from turnout.config.server import GatewayConfig
from turnout.gateway.store_ledger import StoreLedger
from turnout.gateway.store_link import StoreLink
from turnout.governance.ledger import Ledger, MemoryLedger


def open_ledger(config: GatewayConfig, link: StoreLink | None = None) -> Ledger:
    """The ledger for a process serving `config` (opened lazily: its first call connects);
    `link`: the store, for the SQL ledger of several workers."""
    hold = config.store.hold_ttl
    fail_open = config.store.fail_open
    state = config.router.state
    if state.backend == "redis":
        # Imported here: redis-py is loaded only when the Redis backend is configured (it
        # also loads OpenTelemetry whenever that is installed).
        from turnout.governance.redis_ledger import RedisLedger

        return RedisLedger(state, fail_open=fail_open, hold_seconds=hold)
    if config.server.workers > 1 and link is not None:
        return StoreLedger(link, hold_seconds=hold, fail_open=fail_open)
    return MemoryLedger(hold_seconds=hold)
