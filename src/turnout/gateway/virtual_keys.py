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

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Final

from turnout.gateway.key_errors import (
    KeyRefusedError,
    ModelAccessDeniedError,
    TeamModelAccessDeniedError,
    unknown_key,
)
from turnout.gateway.key_rules import Rules, rules_of
from turnout.gateway.store_link import StoreLink
from turnout.governance import GovernanceStore, Key, NotFoundError, Team
from turnout.wire import Principal, Request

#: Entries a process caches at most (a flood of made-up keys empties it rather than grow it).
CACHE_LIMIT: Final = 10_000
#: Seconds a key's lookup may take before the request is a 503 (a database that stopped
#: answering must not hold requests for the driver's own timeouts).
LOOKUP_WITHIN: Final = 5.0
#: Model lists that mean "every model".
EVERY_MODEL: Final = frozenset({"*", "all-proxy-models"})
TEAM_MODELS: Final = "all-team-models"


@dataclass(frozen=True, slots=True)
class Grant:
    """What a virtual key may use: its models and aliases, and its team's models."""

    models: tuple[str, ...]
    aliases: dict[str, str]
    team_models: tuple[str, ...]
    #: The names each list allows (None: every name), worked out once per key read.
    _key_allows: frozenset[str] | None = field(init=False, repr=False, compare=False)
    _team_allows: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key_allows", _allowed(self.models))
        object.__setattr__(self, "_team_allows", _allowed(self.team_models))

    def target(self, requested: str) -> str:
        """The name the router should see: the key's alias for `requested`, or itself."""
        return self.aliases.get(requested, requested)

    def check(self, requested: str, group: str) -> None:
        """Raise unless the key, and its team, may use `requested` (model group `group`)."""
        target = self.target(requested)
        allowed = self._key_allows
        if not (
            allowed is None or requested in self.aliases or requested in allowed or group in allowed
        ):
            raise ModelAccessDeniedError("key", self.models, requested)
        allowed = self._team_allows
        if not (allowed is None or not allowed.isdisjoint((requested, target, group))):
            raise TeamModelAccessDeniedError("team", self.team_models, requested)

    def may_list(self, name: str, group: str) -> bool:
        key, team = self._key_allows, self._team_allows
        return (key is None or name in self.aliases or not key.isdisjoint((name, group))) and (
            team is None or not team.isdisjoint((name, group))
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


def _allowed(models: Iterable[str]) -> frozenset[str] | None:
    """The names a model list allows; None when it allows every one (empty, ``*``,
    ``all-proxy-models``, or only ``all-team-models``)."""
    listed = frozenset(models) - {TEAM_MODELS}
    if not listed or listed & EVERY_MODEL:
        return None
    return listed


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: who (for events and spend) and, for a virtual key, what it may
    use (None: the master key or open access, which may use everything)."""

    principal: Principal
    grant: Grant | None = None
    #: The key's budgets and rate limits (None: not a virtual key, or one with none).
    rules: Rules | None = None


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What a key's record says, worked out once per read: the caller it authenticates, or
    why it is refused. Only expiry is checked again on each request."""

    until: float
    caller: Caller | None = None
    refusal: str | None = None
    expires: datetime | None = None

    def admit(self) -> Caller:
        if self.caller is None:
            raise KeyRefusedError(self.refusal) if self.refusal else unknown_key()
        if self.expires is not None:
            now = datetime.now(UTC)
            if self.expires <= now:
                raise KeyRefusedError(
                    f"Expired Key. Key Expiry time {self.expires.isoformat()} and current "
                    f"time {now.isoformat()}"
                )
        return self.caller


class VirtualKeys:
    """Authenticates virtual keys against the store, through a short-lived cache."""

    def __init__(self, link: StoreLink, *, ttl: float) -> None:
        self._link = link
        self._ttl = ttl
        self._cache: dict[str, _Verdict] = {}
        #: Reads in flight, one per key: the requests that find a key's entry expired at once
        #: (a busy key's every concurrent request) share one read instead of each making it.
        self._reading: dict[str, asyncio.Future[_Verdict]] = {}
        #: Counts `forget`s: a read that began before one is not cached (it may predate the
        #: change that called it).
        self._generation = 0

    def forget(self) -> None:
        """Drop everything cached (after a management call changed keys or teams)."""
        self._cache.clear()
        self._reading.clear()
        self._generation += 1

    async def authenticate(self, presented: str) -> Caller:
        token_hash = self._link.key_hash(presented)
        verdict = self._cache.get(token_hash)
        if verdict is None or verdict.until <= time.monotonic():
            reading = self._reading.get(token_hash)
            if reading is None:
                reading = asyncio.ensure_future(self._refresh(token_hash))
                self._reading[token_hash] = reading
                reading.add_done_callback(partial(self._read_done, token_hash))
            verdict = await asyncio.shield(reading)
        return verdict.admit()

    def _read_done(self, token_hash: str, reading: asyncio.Future[_Verdict]) -> None:
        if self._reading.get(token_hash) is reading:
            del self._reading[token_hash]
        if not reading.cancelled():
            reading.exception()  # retrieved: its waiters were told, or there were none

    async def _refresh(self, token_hash: str) -> _Verdict:
        generation = self._generation
        verdict = await self._link.call(
            lambda store: self._read(store, token_hash), within=LOOKUP_WITHIN
        )
        if self._ttl > 0 and generation == self._generation:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[token_hash] = verdict
        return verdict

    async def _read(self, store: GovernanceStore, token_hash: str) -> _Verdict:
        until = time.monotonic() + self._ttl
        key = await store.key_by_hash(token_hash)
        if key is None:
            return _Verdict(until)
        team = None
        if key.settings.team_id is not None:
            try:
                team = await store.get_team(key.settings.team_id)
            except NotFoundError:
                return _Verdict(until, refusal=f"The key's team {key.settings.team_id} was deleted")
        user = None
        if key.settings.user_id is not None:
            try:
                user = await store.get_user(key.settings.user_id)
            except NotFoundError:
                user = None  # a key may name a user that has no record: no user rules apply
        if user is not None and user.settings.blocked:
            return _Verdict(
                until,
                refusal=f"User={user.id} is blocked. Update via `/user/update` if you're admin.",
            )
        verdict = _judge(key, team, token_hash, until)
        if verdict.caller is not None:
            rules = rules_of(key, team, user)
            if not rules.empty:
                caller = dataclasses.replace(verdict.caller, rules=rules)
                verdict = dataclasses.replace(verdict, caller=caller)
        return verdict


def _judge(key: Key, team: Team | None, token_hash: str, until: float) -> _Verdict:
    settings = key.settings
    if settings.blocked:
        return _Verdict(until, refusal="Key is blocked. Update via `/key/unblock` if you're admin.")
    if team is not None and team.settings.blocked:
        return _Verdict(
            until,
            refusal=f"Team={team.id} is blocked. Update via `/team/unblock` if you're admin.",
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
    return _Verdict(until, caller=Caller(principal, grant), expires=settings.expires)
