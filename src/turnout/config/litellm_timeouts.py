"""LiteLLM's timeouts, read as what they are: limits on each call to one deployment.

LiteLLM resolves one limit for every call it makes to a deployment (its router's
``_get_timeout``), and passes it to the provider's HTTP client; a call that exceeds it fails with a
timeout like any other failure, and is retried or falls back. It is never a deadline over the
request's attempts. The limit of a call is the first set of:

- for a stream: the deployment's ``stream_timeout``, then ``router_settings.stream_timeout``;
- otherwise, and for a stream with neither: the deployment's ``timeout``, then its
  ``request_timeout``, then ``router_settings.timeout``, then ``litellm_settings.request_timeout``
  (LiteLLM's built-in default, 6000 s, is not copied: turnout's own limits apply instead).

A value of 0 counts as unset in that chain, as it does in LiteLLM. In turnout's per-deployment
`turnout.config.router.Timeouts`:

- the call limit is ``request``: one attempt, from sending it to the whole answer;
- the stream limit is ``first_token`` and ``idle``: LiteLLM's HTTP client applies its timeout to
  every read of a stream, so it bounds the wait for the first chunk and every gap after it.

These are upper bounds: turnout's learned limits (`turnout.config.router.LearnedTimeouts`, on by
default) may leave a silent or stalled deployment sooner, never later. A ``timeout: 30`` thus
still lets a deployment that usually answers in a second be left after a few seconds.

turnout's overall deadline over every attempt, retry and fallback is a setting of its own (the
top-level ``timeout``, beside LiteLLM's sections), never taken from these. A limit that is not
under that deadline would let an attempt that times out use up the whole request: each such key
is named in a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from turnout.config.router import RouterConfig

#: Timeout keys of a deployment's ``litellm_params``, in LiteLLM's order of precedence.
DEPLOYMENT_KEYS: Final = ("timeout", "request_timeout", "stream_timeout")

#: turnout's default overall deadline (`RouterConfig.timeout`).
DEFAULT_DEADLINE: Final[float] = next(
    float(info.default) for info in msgspec.structs.fields(RouterConfig) if info.name == "timeout"
)

Warn = Callable[[str, str], None]


@dataclass(slots=True)
class TimeoutKeys:
    """The timeout keys given at one level (a deployment, or the router): key -> (value, path)."""

    given: dict[str, tuple[Any, str]] = field(default_factory=dict)

    def take(self, key: str, value: Any, path: str, warn: Warn) -> None:
        """Record one key; a 0 is no limit in LiteLLM's chain (the next level applies)."""
        if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
            warn(path, "ignored: 0 sets no limit in LiteLLM, so the next setting in line applies")
            return
        self.given[key] = (value, path)

    def call(self, warn: Warn) -> tuple[Any, str] | None:
        """The call limit of this level: ``timeout``, else ``request_timeout``."""
        timeout = self.given.get("timeout")
        request_timeout = self.given.get("request_timeout")
        if timeout is not None and request_timeout is not None:
            warn(request_timeout[1], "ignored: timeout is set and wins")
        return timeout or request_timeout

    def stream(self) -> tuple[Any, str] | None:
        return self.given.get("stream_timeout")


def deployment_timeouts(
    own: TimeoutKeys, router: TimeoutKeys, warn: Warn
) -> dict[str, tuple[Any, str]]:
    """turnout's `Timeouts` fields for one deployment, each as (value, LiteLLM path)."""
    call = own.call(warn) or router.call(warn)
    stream = own.stream() or router.stream() or call
    out: dict[str, tuple[Any, str]] = {}
    if call is not None:
        out["request"] = call
    if stream is not None:
        out["first_token"] = stream
        out["idle"] = stream
    return out


def warn_past_deadline(
    limits: list[dict[str, tuple[Any, str]]], deadline: Any, deadline_path: str, warn: Warn
) -> None:
    """Name, once each, the keys whose limit is not under turnout's overall deadline."""
    if not _number(deadline):
        return  # validation reports it
    where = "the top-level timeout" if deadline_path else "its default"
    seen: set[str] = set()
    for fields in limits:
        for value, path in fields.values():
            if path in seen or not _number(value) or value < deadline:
                continue
            seen.add(path)
            warn(
                path,
                f"a per-call limit of {value:g}s is not under turnout's overall deadline "
                f"({deadline:g}s, {where}): an attempt that times out leaves no time for "
                "another deployment or a fallback; set the top-level timeout above it",
            )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def router_keys(
    effective: Mapping[str, tuple[Any, str]], warn: Warn
) -> tuple[TimeoutKeys, dict[str, tuple[Any, str]]]:
    """The router's default limits out of the effective settings, and the settings left."""
    keys = TimeoutKeys()
    rest: dict[str, tuple[Any, str]] = {}
    for key, (value, path) in effective.items():
        if key in ("timeout", "stream_timeout"):
            keys.take(key, value, path, warn)
        else:
            rest[key] = (value, path)
    return keys, rest


__all__ = [
    "DEFAULT_DEADLINE",
    "DEPLOYMENT_KEYS",
    "TimeoutKeys",
    "deployment_timeouts",
    "router_keys",
    "warn_past_deadline",
]
