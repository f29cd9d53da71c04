"""Which provider object serves each provider name a config uses."""

from __future__ import annotations

from typing import Any

import msgspec

from turnout.clock import Clock
from turnout.config import RouterConfig
from turnout.errors import ConfigError
from turnout.providers.base import Provider
from turnout.providers.http import HttpProvider
from turnout.providers.openai import PRESETS, OpenAICompatibleAdapter
from turnout.testing.simulated import Behaviour, SimulatedProvider
from turnout.upstream import Upstream

#: Deployments of the built-in simulated provider take their behaviour from this parameter.
SIMULATE_PARAM = "simulate"


def supported_providers() -> list[str]:
    return sorted([*PRESETS, "simulated"])


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


def build_providers(
    config: RouterConfig, upstream: Upstream, clock: Clock | None = None
) -> dict[str, Provider]:
    """One provider per name used in the model list; an unknown name is a config error."""
    providers: dict[str, Provider] = {}
    for name in sorted({d.provider for d in config.model_list}):
        if name in PRESETS:
            providers[name] = HttpProvider(OpenAICompatibleAdapter(name), upstream)
        elif name == "simulated":
            providers[name] = simulated_provider(config, clock)
        else:
            raise ConfigError(
                f"provider {name!r} is not supported; supported: "
                + ", ".join(supported_providers())
            )
    return providers


def simulated_provider(config: RouterConfig, clock: Clock | None) -> SimulatedProvider:
    """A simulated provider whose deployments behave as their ``simulate`` parameter says."""
    behaviours: dict[str, Behaviour] = {}
    for index, deployment in enumerate(config.model_list):
        if deployment.provider != "simulated":
            continue
        spec: Any = deployment.params.get(SIMULATE_PARAM, {})
        try:
            behaviours[deployment.id] = msgspec.convert(spec, Behaviour)
        except msgspec.ValidationError as exc:
            raise ConfigError(
                str(exc), path=f"model_list[{index}].params.{SIMULATE_PARAM}"
            ) from None
    return SimulatedProvider(clock, behaviours=behaviours)
