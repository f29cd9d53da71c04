"""Where a configuration keeps credentials, gathered for the `turnout.secrets.Redactor`.

A deployment's key is its ``api_key``, but not only: Azure AD tokens, AWS secret access keys,
session tokens and access key ids are `Secret` fields of its typed settings
(`turnout.config.providers`), headers such as ``Authorization`` sit in the settings'
``extra_headers``, and a value under a credential's name may hide in ``extra_body`` or the
request defaults in ``params`` (a ``base_url`` cannot carry any: credentials or a query in it
are refused at load). Adapters also hold keys read from the environment for deployments that set
none. Every one of them, of every deployment, goes into the one redactor, because an upstream can
echo any of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgspec

from turnout.config.router import Deployment, RouterConfig
from turnout.providers.adapter import Adapter
from turnout.secrets import Redactor, Secret, names_secret

#: Deepest nesting of ``params`` looked into (configs are shallow; this only bounds a cycle).
_DEPTH = 8


def deployment_secrets(deployment: Deployment) -> Iterator[str]:
    """Every credential `deployment` carries: its key, its settings' secrets and credential
    headers, and whatever its params hold under a credential's name."""
    if deployment.api_key:
        yield deployment.api_key.reveal()
    yield from _in_value(deployment.settings, secret=False, depth=0)
    yield from _in_value(deployment.params, secret=False, depth=0)


def secrets_in(value: Any) -> Iterator[str]:
    """Every `Secret` held anywhere in `value` (structs, mappings, sequences): the gateway's
    master key, and whatever other secret its settings gain."""
    yield from _in_value(value, secret=False, depth=0, by_name=False)


def config_secrets(config: RouterConfig) -> Iterator[str]:
    """The credentials of every deployment of `config`."""
    for deployment in config.model_list:
        yield from deployment_secrets(deployment)


def build_redactor(
    config: RouterConfig,
    adapters: Iterable[Adapter] = (),
    extra: Iterable[Secret | str | None] = (),
) -> Redactor:
    """The redactor of a configuration: its deployments' credentials, the keys `adapters` read
    from the environment, and `extra` (the gateway's own secrets)."""
    found: list[Secret | str | None] = [*config_secrets(config), *extra]
    for adapter in adapters:
        found.extend(adapter.credentials())
    return Redactor(found)


def _in_value(value: Any, *, secret: bool, depth: int, by_name: bool = True) -> Iterator[str]:
    if depth > _DEPTH:
        return
    if isinstance(value, Secret):
        if value:
            yield value.reveal()
    elif isinstance(value, str):
        if secret:
            yield value
            # "Bearer <token>", "Basic <credentials>": the credential alone may be echoed too.
            scheme, _, rest = value.partition(" ")
            if rest.strip() and scheme.isalpha():
                yield rest.strip()
    elif isinstance(value, Mapping):
        for name, item in value.items():
            named = by_name and isinstance(name, str) and names_secret(name)
            yield from _in_value(item, secret=secret or named, depth=depth + 1, by_name=by_name)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _in_value(item, secret=secret, depth=depth + 1, by_name=by_name)
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            yield from _in_value(
                getattr(value, name), secret=secret, depth=depth + 1, by_name=by_name
            )
