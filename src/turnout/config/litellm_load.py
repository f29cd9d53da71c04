"""A LiteLLM config.yaml, checked whole: every problem of the file in one pass, then the config.

`turnout.config.litellm` converts the file, recording each problem and leaving out what it
concerns; this module validates what was converted the same way (each deployment, each router
setting, the server and store sections on their own), so that `check_litellm` reports every
error at once, each at its path in the LiteLLM file, and `parse_litellm` refuses a file with
any. A deployment left out on purpose (a provider turnout lacks) is not an error: the rest of
the file serves without it, and the caller decides whether that is fatal (``--strict``).

Environment references that are not set are errors where turnout uses the value. A check may
instead take them as notes (`check_litellm(..., unset_ok=True)`): the value is left out and
every problem it would hide is not reported, so a file can be checked where its secrets are not.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from turnout.config.decoding import convert
from turnout.config.environment import drop_unresolved, resolve_environment, unresolved_in
from turnout.config.litellm import LiteLLMImport, import_litellm
from turnout.config.router import Deployment, RouterConfig, parse_router_config
from turnout.config.server import GatewayConfig, ServerConfig
from turnout.config.store import StoreConfig, given_store_section
from turnout.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ConfigReport:
    """What a check of a config file found; `config` is None when it found errors."""

    config: GatewayConfig | None
    #: Problems that stop the file from loading, each naming its path in the file.
    errors: tuple[str, ...]
    #: Deployments left out (`GatewayConfig.skipped`).
    skipped: tuple[str, ...]
    #: Keys turnout ignores or reads differently (`GatewayConfig.warnings`).
    warnings: tuple[str, ...]
    #: Environment variables not set, when the check allows that.
    notes: tuple[str, ...]


class ConfigErrors(ConfigError):
    """Every error of one config file; the message lists them, one a line."""

    def __init__(self, errors: tuple[str, ...]) -> None:
        count = f"{len(errors)} errors:\n" if len(errors) > 1 else ""
        super().__init__(count + "\n".join(errors))
        self.errors = errors


def parse_litellm(
    data: Mapping[Any, Any],
    environ: Mapping[str, str],
    source: str | None,
    providers: Collection[str] = (),
) -> GatewayConfig:
    """The config of a LiteLLM file; `ConfigErrors` naming every problem when it has any.
    `providers`: provider prefixes served besides turnout's own (see `parse_config`)."""
    report = check_litellm(data, environ, source, providers=providers)
    if report.config is None:
        raise ConfigErrors(report.errors)
    return report.config


def check_litellm(
    data: Mapping[Any, Any],
    environ: Mapping[str, str],
    source: str | None,
    *,
    unset_ok: bool = False,
    providers: Collection[str] = (),
) -> ConfigReport:
    """Convert and validate a LiteLLM file, collecting every problem (see the module)."""
    declared = data.get("environment_variables")
    hint = set(declared) if isinstance(declared, Mapping) else set()
    resolved = resolve_environment(data, environ, declared=hint)
    unset = {id(error): error for error in unresolved_in(resolved)}
    imported = import_litellm(resolved, providers)
    notes: list[str] = []
    errors: list[str] = []
    for error in imported.errors:
        (notes if unset_ok and id(error) in unset else errors).append(str(error))
    for section in (imported.router, imported.server, imported.store):
        for error in unresolved_in(section):
            (notes if unset_ok else errors).append(str(_in_source_terms(error, imported)))
        drop_unresolved(section)
    checker = _Checker(imported)
    server = checker.section(imported.server, ServerConfig, "server")
    store = checker.section(given_store_section(imported.store), StoreConfig, "store")
    router = checker.router()
    errors.extend(checker.errors)
    config = None
    if not errors and server is not None and store is not None and router is not None:
        config = GatewayConfig(
            server=server,
            router=router,
            store=store,
            warnings=tuple(imported.warnings),
            skipped=tuple(imported.skipped),
            source=source,
            format="litellm",
        )
    return ConfigReport(
        config=config,
        errors=tuple(sorted(dict.fromkeys(errors), key=_in_file_order(data))),
        skipped=tuple(imported.skipped),
        warnings=tuple(imported.warnings),
        notes=tuple(dict.fromkeys(notes)),
    )


class _Checker:
    """Validates the converted parts one by one, recording errors in the file's terms."""

    def __init__(self, imported: LiteLLMImport) -> None:
        self.imported = imported
        self.errors: list[str] = []

    def record(self, error: ConfigError) -> None:
        self.errors.append(str(_in_source_terms(error, self.imported)))

    def section(self, data: Any, kind: type[Any], name: str) -> Any:
        try:
            return convert(data if data is not None else {}, kind, at=name)
        except ConfigError as error:
            self.record(error)
            return None

    def router(self) -> RouterConfig | None:
        """Each deployment on its own, then each router setting beside the valid ones: a bad
        deployment does not hide a bad setting, nor make a fallback to its group an error."""
        data = dict(self.imported.router)
        entries = data.pop("model_list", [])
        valid: list[Any] = []
        failed: set[str] = set()
        for index, entry in enumerate(entries):
            try:
                convert(entry, Deployment, at=f"model_list[{index}]")
            except ConfigError as error:
                self.record(error)
                failed.add(str(entry.get("model_name")))
                continue
            valid.append(entry)
        loaded = {str(entry.get("model_name")) for entry in valid}
        _forget_groups(data, (failed | self.imported.broken_groups) - loaded)
        if not valid and self.imported.skipped and not self.errors and not self.imported.errors:
            skipped = "; ".join(self.imported.skipped)
            self.record(ConfigError(f"no deployment left to serve ({skipped})", path="model_list"))
        # Aliases first: every other setting (fallbacks) may name them.
        keys = sorted(data, key=lambda key: key != "aliases")
        settled: dict[str, Any] = {"model_list": valid}
        for key in keys:
            try:
                parse_router_config({**settled, key: data[key]})
            except ConfigError as error:
                self.record(error)
                continue
            settled[key] = data[key]
        if self.errors:
            return None
        try:
            return parse_router_config(settled)
        except ConfigError as error:
            self.record(error)
            return None


def _in_file_order(data: Mapping[Any, Any]) -> Callable[[str], tuple[int, int]]:
    """A sort key putting errors in the order of the file: by section, then by entry (the
    order they are found in differs: conversion first, validation after)."""
    sections = {str(key): position for position, key in enumerate(data)}

    def key(error: str) -> tuple[int, int]:
        head = error.split(": ", 1)[0].split(".", 1)[0]
        name, _, index = head.partition("[")
        entry = index.split("]", 1)[0]
        return sections.get(name, len(sections)), int(entry) if entry.isdigit() else -1

    return key


def _forget_groups(router: dict[str, Any], groups: set[str]) -> None:
    """Fallbacks and aliases naming groups whose deployments are in error lose those names
    (the deployments' errors are reported; a second error for each name would be noise)."""
    if not groups:
        return
    fallbacks = router.get("fallbacks")
    for table in fallbacks.values() if isinstance(fallbacks, dict) else ():
        if not isinstance(table, dict):
            continue
        for source in list(table):
            targets = table[source]
            if source in groups:
                del table[source]
            elif isinstance(targets, list):
                table[source] = [target for target in targets if target not in groups]
    aliases = router.get("aliases")
    if isinstance(aliases, dict):
        for alias in [alias for alias, group in aliases.items() if group in groups]:
            del aliases[alias]


def _in_source_terms(error: ConfigError, imported: LiteLLMImport) -> ConfigError:
    """The error with its turnout path replaced by the LiteLLM path the value came from."""
    path = error.path
    if not path:
        path, sep, _ = str(error).partition(": ")
        if not sep:
            return error
    source_path = imported.source_path(path)
    if source_path == path:
        return error
    return ConfigError(str(error).removeprefix(f"{path}: "), path=source_path)


__all__ = ["ConfigErrors", "ConfigReport", "check_litellm", "parse_litellm"]
