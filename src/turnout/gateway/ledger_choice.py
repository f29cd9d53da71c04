"""Which budget-and-limits ledger a gateway process uses: the one place that decides.

- Routing state on Redis (``state: {backend: redis}``): `RedisLedger` on the same Redis, exact
  across workers and instances; it fails closed when Redis cannot be reached unless
  ``store.fail_open`` is set.
- Otherwise: `MemoryLedger`, exact for the process. With several workers and no Redis, each
  worker then enforces limits on its own share of the traffic; budgets still start from the
  spend recorded in the store (each budget's `seed`).

Holds last as long as the store's ``reservation_ttl`` unless renewed (streams renew theirs), so
that the holds of a crashed instance come back after it.
"""

from __future__ import annotations

from turnout.config.server import GatewayConfig
from turnout.governance.ledger import Ledger, MemoryLedger
from turnout.governance.redis_ledger import RedisLedger


def open_ledger(config: GatewayConfig) -> Ledger:
    """The ledger for a process serving `config` (opened lazily: its first call connects)."""
    hold = config.store.reservation_ttl
    state = config.router.state
    if state.backend == "redis":
        return RedisLedger(state, fail_open=config.store.fail_open, hold_seconds=hold)
    return MemoryLedger(hold_seconds=hold)
