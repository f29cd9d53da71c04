"""LiteLLM's database, read as turnout's ``store``: ``general_settings.database_url``.

LiteLLM keeps keys and spend in PostgreSQL through Prisma; turnout reads the same URL as its own
store's (its tables, all named ``turnout_*``, sit beside LiteLLM's without touching them).
Prisma's own URL parameters (``connection_limit``, ``pool_timeout``, ``schema``, ...) mean
nothing to turnout's driver: they are dropped, each with a warning. turnout's own ``store``
section may sit beside LiteLLM's sections, and its ``url`` wins.

A ``database_url: os.environ/DATABASE_URL`` whose variable is not set leaves the store at its
default, with a warning saying so, rather than failing the load: LiteLLM configs commonly carry
that line, and a router that needs no keys must keep starting where it started before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from turnout.config.store import DEFAULT_URL
from turnout.errors import ConfigError

#: Query parameters of Prisma's connection URLs that no driver of turnout's understands.
PRISMA_PARAMETERS: Final = frozenset(
    {
        "connection_limit",
        "pool_timeout",
        "schema",
        "pgbouncer",
        "socket_timeout",
        "connect_timeout",
        "statement_cache_size",
    }
)


def import_store(
    own: Mapping[Any, Any],
    general: Mapping[Any, Any],
    origins: dict[str, str],
    warn: Callable[[str, str], None],
) -> dict[str, Any]:
    """turnout's ``store`` data from its own section (`own`) and LiteLLM's `general` settings,
    recording in `origins` the path each value came from."""
    store: dict[str, Any] = {}
    for key, value in own.items():
        store[key] = value
        origins[f"store.{key}"] = f"store.{key}"
    closed = general.get("fail_closed_budget_enforcement")
    if isinstance(closed, bool) and "fail_open" not in store:
        store["fail_open"] = not closed
        origins["store.fail_open"] = "general_settings.fail_closed_budget_enforcement"
    if "database_url" not in general:
        return store
    path = "general_settings.database_url"
    url = general["database_url"]
    if "url" in store:
        warn(path, "ignored: store.url is set and wins")
    elif isinstance(url, ConfigError):
        problem = str(url).removeprefix(f"{path}: ")
        warn(path, f"ignored: {problem}; the store stays at {DEFAULT_URL}")
    elif isinstance(url, str):
        store["url"] = _without_prisma_parameters(url, lambda name: warn(path, name))
        origins["store.url"] = path
    elif url is not None:
        store["url"] = url  # the store's own validation names the path and the problem
        origins["store.url"] = path
    return store


def _without_prisma_parameters(url: str, dropped: Callable[[str], None]) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in PRISMA_PARAMETERS:
            dropped(f"the URL's {name} parameter is Prisma's; ignored")
        else:
            kept.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(kept)))
