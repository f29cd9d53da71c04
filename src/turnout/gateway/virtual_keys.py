"""Virtual keys on the request path: who a key is, and which models it may use.

A bearer key that is not the master key is looked up by its digest in the governance store. What
was read is cached in the process for `store.key_cache_ttl` seconds (five by default), keyed by
the digest, so a busy key costs no query per request; a key blocked, deleted, regenerated or
changed takes effect in every worker within that time (at once in the worker that served the
management call, which empties its cache). Unknown keys are cached too, so that a client
retrying a bad key does not cost a query per attempt.

A key's allowed ``models`` name model groups or router aliases (none, ``*`` or
``all-proxy-models``: every model); its ``aliases`` map a requested name to a model group (an
alias is itself a grant); a team's ``models`` apply on top (``all-team-models`` in a key's list
means "whatever the team may use").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from turnout.gateway.key_errors import (
    KeyRefusedError,
    ModelAccessDeniedError,
    TeamModelAccessDeniedError,
    unknown_key,
)
from turnout.gateway.store_link import StoreLink
from turnout.governance import GovernanceStore, Key, NotFoundError, Team
from turnout.wire import Principal, Request

#: Entries a process caches at most (a flood of made-up keys empties it rather than grow it).
CACHE_LIMIT: Final = 10_000
#: Model lists that mean "every model".
EVERY_MODEL: Final = frozenset({"*", "all-proxy-models"})
TEAM_MODELS: Final = "all-team-models"


@dataclass(frozen=True, slots=True)
class Grant:
    """What a virtual key may use: its models and aliases, and its team's models."""

    models: tuple[str, ...]
    aliases: dict[str, str]
    team_models: tuple[str, ...]

    def target(self, requested: str) -> str:
        """The name the router should see: the key's alias for `requested`, or itself."""
        return self.aliases.get(requested, requested)

    def check(self, requested: str, group: str) -> None:
        """Raise unless the key, and its team, may use `requested` (model group `group`)."""
        names = {requested, self.target(requested), group}
        if requested not in self.aliases and not _allows(self.models, names):
            raise ModelAccessDeniedError("key", self.models, requested)
        if not _allows(self.team_models, names):
            raise TeamModelAccessDeniedError("team", self.team_models, requested)

    def may_list(self, name: str, group: str) -> bool:
        names = {name, group}
        return (name in self.aliases or _allows(self.models, names)) and _allows(
            self.team_models, names
        )


def admit(grant: Grant, request: Request, group_of: Callable[[str], str]) -> None:
    """Point `request` at the key's alias for the model it names, and raise unless the key may
    use that model (`group_of` raises for a model that does not exist: a 404 comes first)."""
    requested = request.model
    request.model = grant.target(requested)
    grant.check(requested, group_of(request.model))


def visible_models(
    grant: Grant | None, names: Iterable[str], group_of: Callable[[str], str]
) -> list[str]:
    """What /v1/models lists for a caller: every public name it may use, and its key's
    aliases whose target exists."""
    names = list(names)
    if grant is None:
        return names
    known = set(names)
    listed = [name for name in names if grant.may_list(name, group_of(name))]
    for alias, target in grant.aliases.items():
        if target in known and alias not in known and grant.may_list(alias, group_of(target)):
            listed.append(alias)
    return listed


def _allows(models: Iterable[str], names: set[str]) -> bool:
    listed = set(models) - {TEAM_MODELS}
    if not listed or listed & EVERY_MODEL:
        return True
    return bool(listed & names)


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: who (for events and spend) and, for a virtual key, what it may
    use (None: the master key or open access, which may use everything)."""

    principal: Principal
    grant: Grant | None = None


@dataclass(frozen=True, slots=True)
class _Found:
    key: Key | None
    team: Team | None
    team_missing: bool
    until: float


class VirtualKeys:
    """Authenticates virtual keys against the store, through a short-lived cache."""

    def __init__(self, link: StoreLink, *, ttl: float) -> None:
        self._link = link
        self._ttl = ttl
        self._cache: dict[str, _Found] = {}

    def forget(self) -> None:
        """Drop everything cached (after a management call changed keys or teams)."""
        self._cache.clear()

    async def authenticate(self, presented: str) -> Caller:
        token_hash = self._link.key_hash(presented)
        found = self._cache.get(token_hash)
        if found is None or found.until <= time.monotonic():
            found = await self._link.call(lambda store: self._read(store, token_hash))
            if self._ttl > 0:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                self._cache[token_hash] = found
        return _admit(found, token_hash)

    async def _read(self, store: GovernanceStore, token_hash: str) -> _Found:
        key = await store.key_by_hash(token_hash)
        team = None
        team_missing = False
        if key is not None and key.settings.team_id is not None:
            try:
                team = await store.get_team(key.settings.team_id)
            except NotFoundError:
                team_missing = True
        return _Found(key, team, team_missing, time.monotonic() + self._ttl)


def _admit(found: _Found, token_hash: str) -> Caller:
    key = found.key
    if key is None:
        raise unknown_key()
    settings = key.settings
    if settings.blocked:
        raise KeyRefusedError("Key is blocked. Update via `/key/unblock` if you're admin.")
    now = datetime.now(UTC)
    if settings.expires is not None and settings.expires <= now:
        raise KeyRefusedError(
            f"Expired Key. Key Expiry time {settings.expires.isoformat()} and current time "
            f"{now.isoformat()}"
        )
    if found.team_missing:
        raise KeyRefusedError(f"The key's team {settings.team_id} was deleted")
    team = found.team
    if team is not None and team.settings.blocked:
        raise KeyRefusedError(
            f"Team={team.id} is blocked. Update via `/team/unblock` if you're admin."
        )
    principal = Principal(
        f"key:{key.id}",
        key_id=key.id,
        key_hash=token_hash,
        key_alias=settings.key_alias,
        team_id=settings.team_id,
        user_id=settings.user_id,
    )
    grant = Grant(
        models=settings.models,
        aliases=dict(settings.aliases),
        team_models=team.settings.models if team is not None else (),
    )
    return Caller(principal, grant)
