"""Where keys, teams, users and spend are kept: the ``store`` section.

``store: {url: sqlite:///turnout.db}`` (the default: a SQLite file in the working directory,
created with its tables on first start) or ``store: {url: postgresql://user@host:5432/db}``. A
password written in the URL is taken out of it when the config is read and kept as a `Secret`
(``password``), so that the URL can be shown in logs and errors as it is. ``pepper`` turns the
stored digest of every virtual key into an HMAC under it (`turnout.governance.keys`).

Whether the gateway uses the store at all is `enabled`: given a ``store`` section (or LiteLLM's
``database_url``) it is on unless the section says ``enabled: false``; with neither, it is on
exactly when a master key is set (virtual keys need one to be managed), so a gateway run with no
master key, like the demo, never touches a database (`store_enabled`).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from turnout.config.state import move_password
from turnout.errors import ConfigError
from turnout.secrets import Secret

SCHEMES = ("sqlite", "postgresql", "postgres")
DEFAULT_URL = "sqlite:///turnout.db"


class StoreConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The governance store. Changing it takes a restart."""

    #: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
    #: ``postgresql://[user[:password]@]host[:port]/database``.
    url: str = DEFAULT_URL
    #: The database password; a password written in `url` is moved here.
    password: Secret | None = None
    #: A server-side secret the digests of virtual keys are keyed with (None: plain SHA-256,
    #: as LiteLLM stores them). Changing it invalidates every key made before.
    pepper: Secret | None = None
    #: Database connections each process keeps at most (requests beyond it wait for one).
    pool_size: Annotated[int, Meta(ge=1, le=1000)] = 10
    #: Whether the gateway opens the store (None: when a master key is set; a ``store`` section
    #: or LiteLLM's ``database_url`` sets it to true unless it says otherwise).
    enabled: bool | None = None
    #: Seconds a worker trusts what it read about a virtual key (0: read it on every request).
    #: A key blocked, deleted or changed takes effect in every worker within this time.
    key_cache_ttl: Annotated[float, Meta(ge=0, le=3600)] = 5.0
    #: When the shared budget ledger (Redis) cannot be reached: False (the default) refuses
    #: requests of keys with budgets or limits with a 503, so that no spend escapes its
    #: budget; True admits them against this process's own ledger meanwhile, each instance
    #: then enforcing limits on its own traffic only. LiteLLM's
    #: ``general_settings.fail_closed_budget_enforcement`` sets it (its negation).
    fail_open: bool = False
    #: Seconds a request's holds (its budget reservation, its parallel-request lease) last
    #: unless renewed (a running stream renews its own every minute): the holds of a process
    #: that crashed come back after this time.
    hold_ttl: Annotated[float, Meta(ge=60, le=7 * 86_400)] = 600.0

    # -- the spend-log writer (`turnout.governance.spend_writer`) --------------------------------
    #: Spend log rows a process queues at most: beyond it the request path waits for room
    #: (back-pressure) rather than drop a row. About 1 KB each.
    spend_queue_size: Annotated[int, Meta(ge=1, le=1_000_000)] = 10_000
    #: Rows written in one transaction at most.
    spend_batch_size: Annotated[int, Meta(ge=1, le=10_000)] = 500
    #: Milliseconds a batch waits for more rows after its first before it is written.
    spend_batch_ms: Annotated[float, Meta(ge=0, le=300_000)] = 200.0
    #: Seconds the writer may take at shutdown to write what is queued; rows it could not write
    #: in time go to `spend_spill_dir`.
    spend_drain_timeout: Annotated[float, Meta(ge=0, le=3600)] = 10.0
    #: Where rows that could not be written by shutdown are kept (one JSON-lines file per
    #: process), to be written by the next start; created when first needed.
    spend_spill_dir: str = "turnout-spend-spill"

    def __post_init__(self) -> None:
        scheme = self.url.partition("://")[0].partition("+")[0]
        if "://" not in self.url or scheme not in SCHEMES:
            raise ConfigError(
                f"{self.url.partition('://')[0]!r} is no store URL scheme "
                "(use sqlite:///path or postgresql://...)",
                path="url",
            )
        if scheme == "sqlite" and ":memory:" in self.url:
            raise ConfigError(
                "an in-memory SQLite database is not shared between connections and is lost "
                "on exit; name a file (sqlite:///turnout.db)",
                path="url",
            )
        if self.pepper is not None and not self.pepper:
            raise ConfigError("must not be empty (leave it out for none)", path="pepper")
        move_password(self)


def store_enabled(store: StoreConfig, *, master_key_set: bool) -> bool:
    """Whether a gateway with this store section (and master key or not) opens the store."""
    return master_key_set if store.enabled is None else store.enabled


def given_store_section(data: object) -> object:
    """A ``store`` section's data as written, with ``enabled: true`` implied when the section
    says anything (other than how to fail, which says nothing about keeping keys) and does not
    say ``enabled`` itself."""
    if isinstance(data, dict) and set(data) - {"fail_open"} and "enabled" not in data:
        return {**data, "enabled": True}
    return data
