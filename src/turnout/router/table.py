"""The model table: groups of deployments, aliases and per-deployment policies.

A `ModelTable` is immutable and built once per config. A reload builds a new one and swaps it
in; requests already running keep the table they started with, so a reload never fails them.

Each deployment enters the table with the built-in list prices and context window of its model
filled in where its config sets none (`turnout.prices.with_known_prices`), so cost-aware routing,
the context-window filter and reported costs all use them; ``config`` keeps what was configured.
"""

from __future__ import annotations

from collections.abc import Mapping

from turnout.config.router import Deployment, RouterConfig
from turnout.errors import FallbackKind, ModelNotFoundError
from turnout.health.rules import HealthPolicy
from turnout.pricing.lookup import with_known_prices
from turnout.providers.capabilities import Lacking, lacked_by

#: Kinds that never borrow the general list: no list of their own, no fallback.
_OWN_LIST_ONLY = frozenset({FallbackKind.GENERAL, FallbackKind.CONTENT_POLICY})


class ModelTable:
    __slots__ = ("aliases", "by_id", "config", "groups", "ids", "lacks", "policies")

    def __init__(self, config: RouterConfig, providers: Mapping[str, object] | None = None) -> None:
        self.config = config
        deployments = [with_known_prices(d) for d in config.model_list]
        groups: dict[str, list[Deployment]] = {}
        for deployment in deployments:
            groups.setdefault(deployment.model_name, []).append(deployment)
        self.groups: dict[str, tuple[Deployment, ...]] = {
            name: tuple(members) for name, members in groups.items()
        }
        self.ids: dict[str, tuple[str, ...]] = {
            name: tuple(d.id for d in members) for name, members in self.groups.items()
        }
        self.by_id: dict[str, Deployment] = {d.id: d for d in deployments}
        self.policies: dict[str, HealthPolicy] = {
            d.id: HealthPolicy.for_deployment(d, config) for d in deployments
        }
        self.aliases: dict[str, str] = {
            alias: _final(alias, config.aliases) for alias in config.aliases
        }
        #: Deployment id to the request features it cannot honour, as its provider declares
        #: (`turnout.providers.capabilities`); only deployments that lack some are listed, so
        #: a config whose deployments honour everything makes the pre-filter free.
        #: A deployment with ``drop_params`` accepts such requests (it drops what it lacks),
        #: but one that honours them is preferred.
        self.lacks: dict[str, Lacking] = {}
        for deployment in deployments if providers is not None else ():
            provider = providers.get(deployment.provider) if providers is not None else None
            lacking = lacked_by(provider, deployment)
            if lacking:
                self.lacks[deployment.id] = Lacking(lacking, deployment.drop_params)

    def resolve(self, name: str) -> str:
        """The model group a public name (group or alias) refers to."""
        if name in self.groups:
            return name
        group = self.aliases.get(name)
        if group is None:
            raise ModelNotFoundError(name, self.public_names())
        return group

    def public_names(self) -> list[str]:
        """Every name a caller may use: groups and aliases."""
        return sorted([*self.groups, *self.aliases])

    def fallbacks(self, kind: FallbackKind, group: str) -> list[str]:
        """Groups to try after `group` failed with a failure of `kind`, in order.

        A request no deployment of the group can honour (a parameter its providers lack,
        `turnout.router.filters`) fails with an `UnsupportedParameterError`, which takes the general
        list: those are the models the operator counts as substitutes. A kind with no list for the
        group uses the general list, as LiteLLM does, except content policy: a refusal is the
        provider's verdict on the request, and another model answers it only where a
        `content_policy` list says so (else the caller gets the refusal)."""
        config = self.config.fallbacks
        table: Mapping[str, list[str]] = {
            FallbackKind.GENERAL: config.general,
            FallbackKind.CONTEXT_WINDOW: config.context_window,
            FallbackKind.CONTENT_POLICY: config.content_policy,
            FallbackKind.RATE_LIMIT: config.rate_limit,
        }[kind]
        targets = table.get(group)
        if targets is None:
            targets = table.get("*")
        if targets is None and kind not in _OWN_LIST_ONLY:
            targets = config.general.get(group, config.general.get("*"))
        return [self.resolve(target) for target in targets or ()]


def _final(name: str, aliases: Mapping[str, str]) -> str:
    while name in aliases:
        name = aliases[name]
    return name
