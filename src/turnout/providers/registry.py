"""Which provider object serves each provider name a config uses."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from turnout.clock import Clock, SystemClock
from turnout.config.providers import SimulatedSettings, settings_of
from turnout.config.router import RouterConfig
from turnout.errors import ConfigError
from turnout.providers.adapter import Adapter
from turnout.providers.base import Provider
from turnout.providers.credentials import build_redactor
from turnout.providers.http import HttpProvider
from turnout.providers.openai import PRESETS, OpenAICompatibleAdapter
from turnout.providers.simulated import SimulatedProvider
from turnout.secrets import Redactor, Secret
from turnout.upstream import Transport

#: Native adapters: provider name -> module defining
#: ``create_adapter(name: str, environ: Mapping[str, str], clock: Clock) -> Adapter``.
NATIVE: dict[str, str] = {
    "azure": "turnout.providers.azure",
    "anthropic": "turnout.providers.anthropic.adapter",
    "gemini": "turnout.providers.gemini.adapter",
    "bedrock": "turnout.providers.bedrock.adapter",
    "vertex_anthropic": "turnout.providers.vertex_anthropic",
}


def supported_providers() -> list[str]:
    return sorted([*PRESETS, *NATIVE, "simulated"])


def native_adapter(
    name: str, environ: Mapping[str, str] | None = None, clock: Clock | None = None
) -> Adapter:
    """The native adapter for provider `name` (imported only when a config uses it)."""
    try:
        module = importlib.import_module(NATIVE[name])
    except ImportError as missing:
        raise ConfigError(
            f"provider {name!r} needs an optional dependency ({missing.name}): "
            f"pip install 'turnout[{name}]'"
        ) from None
    factory: Any = module.create_adapter
    adapter: Adapter = factory(
        name, os.environ if environ is None else environ, clock or SystemClock()
    )
    return adapter


def check_supported(config: RouterConfig) -> None:
    """Fail at load, naming the entry, when a deployment names a provider turnout lacks."""
    known = set(supported_providers())
    for index, deployment in enumerate(config.model_list):
        if deployment.provider not in known:
            raise ConfigError(
                f"provider {deployment.provider!r} is not supported; supported: "
                + ", ".join(sorted(known)),
                path=f"model_list[{index}].provider",
            )


@dataclass(frozen=True, slots=True)
class ProviderSet:
    """The providers of one configuration, and the redactor their errors go through (which
    the gateway applies again where an error leaves it)."""

    providers: dict[str, Provider]
    redactor: Redactor


def build_providers(
    config: RouterConfig, transport: Transport, clock: Clock | None = None
) -> dict[str, Provider]:
    """One provider per name used in the model list; an unknown name is a config error."""
    return provider_set(config, transport, clock).providers


def provider_set(
    config: RouterConfig,
    transport: Transport,
    clock: Clock | None = None,
    *,
    secrets: Iterable[Secret | str | None] = (),
) -> ProviderSet:
    """`build_providers`, with the one `Redactor` of the configuration: every deployment's
    credentials, the keys adapters read from the environment, and `secrets` (the gateway's).
    Every HTTP provider sends through `transport`."""
    adapters: dict[str, Adapter] = {}
    for name in sorted({d.provider for d in config.model_list}):
        if name in PRESETS:
            adapters[name] = OpenAICompatibleAdapter(name, clock=clock)
        elif name in NATIVE:
            adapters[name] = native_adapter(name, clock=clock)
        elif name != "simulated":
            raise ConfigError(
                f"provider {name!r} is not supported; supported: "
                + ", ".join(supported_providers())
            )
    redactor = build_redactor(config, adapters.values(), secrets)
    providers: dict[str, Provider] = {
        name: HttpProvider(adapter, transport, redactor) for name, adapter in adapters.items()
    }
    if any(d.provider == "simulated" for d in config.model_list):
        providers["simulated"] = simulated_provider(config, clock)
    return ProviderSet(providers, redactor)


def simulated_provider(config: RouterConfig, clock: Clock | None) -> SimulatedProvider:
    """A simulated provider whose deployments behave as their ``simulate`` setting says."""
    behaviours = {
        deployment.id: settings_of(deployment.settings, SimulatedSettings).simulate
        for deployment in config.model_list
        if deployment.provider == "simulated"
    }
    return SimulatedProvider(clock, behaviours=behaviours)
