"""LiteLLM's config.yaml, read as turnout's config.

`import_litellm` turns a parsed LiteLLM config into plain data in turnout's shapes (the
router's config, the server's, the store's) with what it found on the way, each naming its
path in the LiteLLM file: warnings (a key turnout ignores or reads differently, with the
reason), errors (a misspelled key, with a did-you-mean; a section or value of the wrong shape)
and skipped deployments (a provider turnout lacks, a wildcard). Nothing is raised: an entry or
setting with a problem is left out and the conversion goes on, so that one pass finds every
problem. It checks only what it must look at to convert; types and ranges are checked by
`turnout.config.litellm_load`, which validates each part on its own and turns the paths of its
errors back into the file's (`LiteLLMImport.source_path`). The tables of keys are
`turnout.config.litellm_keys`; the deployments are read by `turnout.config.litellm_deployments`.

What maps where (LiteLLM -> turnout):

- ``model_list[i]``: ``model_name``; ``litellm_params.model`` ``<provider>/<model>`` -> provider
  and model (a bare name -> openai); ``api_key``; ``api_base`` -> ``base_url``; ``api_version``;
  ``rpm``; ``tpm``; ``weight``; ``order`` -> ``priority``; ``timeout`` (or ``request_timeout``)
  and ``stream_timeout`` -> ``timeouts`` (per-call limits: `turnout.config.litellm_timeouts`);
  ``max_parallel_requests``; costs; ``tags``;
  ``cooldown_time``; request parameters -> ``params``; the settings of the deployment's provider
  family (`turnout.config.providers`) -> ``params`` too, which moves them into its typed
  settings (another family's settings are ignored, with a warning);
  ``drop_params`` (also module-wide from ``litellm_settings``); ``additional_drop_params`` ->
  ``unsupported_params`` with ``drop_params``;
  ``model_info.id`` -> ``id``; ``model_info.max_input_tokens`` -> ``context_window``;
  ``model_info.supports_function_calling``/``supports_response_schema`` -> the deployment's
  ``unsupported_params`` (false) or ``supported_params`` (true);
  ``litellm_credential_name`` -> the credential's values from ``credential_list``.
- ``router_settings`` (over the same keys in ``litellm_settings``): strategy, retries, cooldowns,
  fallbacks of every kind, ``max_fallbacks``, ``model_group_alias`` -> ``aliases``; ``timeout``,
  ``stream_timeout`` and ``litellm_settings.request_timeout`` -> the per-call limits of every
  deployment that sets none itself (LiteLLM's defaults for each call, not a deadline).
- Cooldowns: ``cooldown_time`` (a deployment's, or the router's) is the length of a first
  ejection, as long as LiteLLM's cooldown; ``allowed_fails`` and ``disable_cooldowns`` keep
  LiteLLM's meaning. What turnout adds (probing, longer ejections for a deployment that keeps
  failing) is `turnout.health.ejection`, at its defaults.
- turnout's overall deadline is its own top-level ``timeout`` beside LiteLLM's sections (default
  600 s), as its own ``server`` section and ``learned_timeouts`` (learned per-deployment limits)
  may be.
- ``general_settings.master_key`` -> the server's ``master_key``. turnout's own ``server``
  section may sit beside LiteLLM's sections, and its ``master_key`` wins.
- ``general_settings.database_url`` -> the store's ``url`` (`turnout.config.litellm_store`);
  turnout's own ``store`` section may sit beside LiteLLM's sections too.

Environment references (``os.environ/NAME``) are resolved by the caller before conversion
(`turnout.config.load`); a reference that could not be resolved arrives as the `ConfigError`
that reports it, and is recorded as an error here only where the value is needed to convert.
docs/litellm.md has the whole table for users.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.config.litellm_deployments import DeploymentReader
from turnout.config.litellm_keys import (
    FALLBACKS,
    GENERAL_KEYS,
    GENERAL_REASON,
    LITELLM_SECTIONS,
    OTHER_SETTINGS_KEYS,
    PROVIDERS,
    SETTINGS,
    SETTINGS_REASONS,
    SHARED_KEYS,
    STRATEGY_ARGS,
    TOP_LEVEL_KEYS,
    UNKNOWN_REASON,
)
from turnout.config.litellm_store import import_store
from turnout.config.litellm_timeouts import (
    DEFAULT_DEADLINE,
    TimeoutKeys,
    deployment_timeouts,
    router_keys,
    warn_past_deadline,
)
from turnout.config.litellm_values import mapping, sequence, text
from turnout.config.state import LITELLM_REDIS_KEYS, litellm_redis
from turnout.errors import ConfigError

#: Every key of ``router_settings``/``litellm_settings`` turnout knows of (mapped or not).
_SETTINGS_KEYS = frozenset(
    {*SETTINGS, *FALLBACKS, *SHARED_KEYS, *SETTINGS_REASONS, *OTHER_SETTINGS_KEYS}
)
#: What turnout's providers serve, by LiteLLM's prefixes, for the error that skips another.
_SERVED = ", ".join(sorted(PROVIDERS))


def is_litellm_config(data: Mapping[Any, Any]) -> bool:
    """Whether parsed config data has LiteLLM's shape rather than turnout's."""
    if any(section in data for section in LITELLM_SECTIONS):
        return True
    models = data.get("model_list")
    return isinstance(models, list) and any(
        isinstance(entry, Mapping) and "litellm_params" in entry for entry in models
    )


@dataclass(frozen=True, slots=True)
class LiteLLMImport:
    """A converted LiteLLM config, with where each of turnout's values came from."""

    #: Router config data in turnout's shape (for `parse_router_config`).
    router: dict[str, Any]
    #: Server config data in turnout's shape (for `turnout.config.load.ServerConfig`).
    server: dict[str, Any]
    #: Store config data in turnout's shape (for `turnout.config.store.StoreConfig`).
    store: dict[str, Any]
    #: One line per key turnout ignores or reads differently, each naming its LiteLLM path.
    warnings: list[str]
    #: turnout path (``model_list[0].base_url``, ``server.master_key``) -> LiteLLM path.
    origins: dict[str, str]
    #: Problems that make the file unusable as written (a misspelled key, a value of the wrong
    #: shape), each naming its LiteLLM path; all of them, not the first only.
    errors: list[ConfigError] = field(default_factory=list)
    #: Deployments left out (an unsupported provider, a wildcard), each naming its path: the
    #: rest of the file loads without them unless the caller is strict.
    skipped: list[str] = field(default_factory=list)
    #: Model groups with no deployment left because their entries are in `errors`: a fallback
    #: or alias naming one is not a second error.
    broken_groups: set[str] = field(default_factory=set)

    def source_path(self, path: str) -> str:
        """The LiteLLM path of a turnout path (or of the closest enclosing one it knows)."""
        best = ""
        for known in self.origins:
            if len(known) > len(best) and (
                path == known or path.startswith((f"{known}.", f"{known}["))
            ):
                best = known
        return self.origins[best] + path[len(best) :] if best else path


def convert_litellm(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """A LiteLLM config as (router config data, server config data, warnings); a
    `ConfigError` naming every error it found, if any."""
    imported = import_litellm(data)
    if imported.errors:
        raise ConfigError("\n".join(str(error) for error in imported.errors))
    return imported.router, imported.server, imported.warnings


def import_litellm(data: Mapping[Any, Any], providers: Collection[str] = ()) -> LiteLLMImport:
    """Convert a LiteLLM config, keeping the origin of every value (see `LiteLLMImport`);
    `providers`: prefixes served besides turnout's own (a library's in-process providers)."""
    converter = _Converter(providers)
    converter.convert(data)
    return LiteLLMImport(
        router=converter.router,
        server=converter.server,
        store=converter.store,
        warnings=converter.warnings,
        origins=converter.origins,
        errors=converter.errors,
        skipped=converter.skipped,
        broken_groups=converter.broken_groups,
    )


class _Converter(DeploymentReader):
    """The deployments (`DeploymentReader`), then the router's settings and the sections of
    the server and store."""

    def __init__(self, providers: Collection[str] = ()) -> None:
        super().__init__(providers)
        self.router: dict[str, Any] = {}
        self.server: dict[str, Any] = {}
        self.store: dict[str, Any] = {}
        #: The router's default per-call limits (``router_settings.timeout``...).
        self.router_timeouts = TimeoutKeys()

    def put(self, section: str, key: str, value: Any, origin: str) -> None:
        self.router.setdefault(section, {})[key] = value
        self.origins[f"{section}.{key}"] = origin

    # -- the file --------------------------------------------------------------------------------

    def convert(self, data: Mapping[Any, Any]) -> None:
        with self.collecting():
            self.read_credentials(data.get("credential_list"))
        if "model_list" in data:
            with self.collecting():
                self.router["model_list"] = self.model_list(data["model_list"])
                self.origins["model_list"] = "model_list"
        router: Mapping[Any, Any] = {}
        module: Mapping[Any, Any] = {}
        with self.collecting():
            router = mapping(data.get("router_settings"), "router_settings")
        with self.collecting():
            module = mapping(data.get("litellm_settings"), "litellm_settings")
        self.settings(router, module)
        self.without_skipped_groups()
        self.priority_tiers()
        with self.collecting():
            self.timeouts(data)
        with self.collecting():
            self.server_sections(data)
        with self.collecting():
            for name in mapping(data.get("environment_variables"), "environment_variables"):
                self.ignore(
                    f"environment_variables.{name}",
                    "turnout does not set environment variables from the config; "
                    "set them in the environment",
                )
        for key in data:
            if key in ("timeout", "learned_timeouts"):
                # turnout's own overall deadline, and its learned per-deployment limits.
                self.router[key] = data[key]
                self.origins[key] = key
            elif key == "include":
                self.ignore("include", "not supported: merge the included files into this one")
            elif key not in ("model_list", "server", "store") and key not in LITELLM_SECTIONS:
                self.unknown(str(key), key, TOP_LEVEL_KEYS, UNKNOWN_REASON)
        for name, credential in self.credentials.items():
            if not credential.used:
                self.ignore(credential.path, f"no deployment uses credential {name!r}")

    def server_sections(self, data: Mapping[Any, Any]) -> None:
        """turnout's own ``server`` and ``store`` sections, which may sit beside LiteLLM's, and
        what ``general_settings`` gives them."""
        for key, value in mapping(data.get("server"), "server").items():
            self.server[key] = value
            self.origins[f"server.{key}"] = f"server.{key}"
        general = mapping(data.get("general_settings"), "general_settings")
        self.store = import_store(
            mapping(data.get("store"), "store"), general, self.origins, self.warn
        )
        for key, value in general.items():
            path = f"general_settings.{key}"
            if key not in ("master_key", "database_url", "fail_closed_budget_enforcement"):
                # database_url and fail_closed_budget_enforcement: import_store
                self.unknown(path, key, GENERAL_KEYS, GENERAL_REASON)
            elif key == "master_key" and "master_key" in self.server:
                self.ignore(path, "server.master_key is set and wins")
            elif key == "master_key":
                self.server["master_key"] = value
                self.origins["server.master_key"] = path

    def without_skipped_groups(self) -> None:
        """Fallbacks and aliases that name a group whose deployments were all skipped lose
        that name, with a warning: the rest of the file still loads."""
        if not self.skipped_groups:
            return
        for kind, table in self.router.get("fallbacks", {}).items():
            for source in list(table):
                origin = self.origins.get(f"fallbacks.{kind}.{source}", "fallbacks")
                if source in self.skipped_groups:
                    del table[source]
                    self.warn(origin, f"ignored: {self.gone(source)}")
                    continue
                for target in [t for t in table[source] if t in self.skipped_groups]:
                    table[source].remove(target)
                    self.warn(origin, f"fallback {target!r} left out: {self.gone(target)}")
                if not table[source]:
                    del table[source]
        aliases = self.router.get("aliases", {})
        for alias in [a for a, group in aliases.items() if group in self.skipped_groups]:
            self.warn(self.origins[f"aliases.{alias}"], f"ignored: {self.gone(aliases[alias])}")
            del aliases[alias]

    def gone(self, group: str) -> str:
        return f"model group {group!r} was skipped ({self.skipped_groups[group]})"

    # -- router_settings and litellm_settings ----------------------------------------------------

    def settings(self, router: Mapping[Any, Any], module: Mapping[Any, Any]) -> None:
        effective: dict[str, tuple[Any, str]] = {}
        for key, value in module.items():
            path = f"litellm_settings.{key}"
            name = "timeout" if key == "request_timeout" else key
            if key == "drop_params":
                # LiteLLM's module-wide default: every deployment that sets none of its own.
                for out in self.deployments:
                    if "drop_params" not in out.data:
                        out.put("drop_params", value, path)
            elif key not in SHARED_KEYS and key != "request_timeout":
                reason = SETTINGS_REASONS.get(key, UNKNOWN_REASON)
                self.unknown(path, key, _SETTINGS_KEYS, reason)
            elif name in router:
                self.ignore(path, f"router_settings.{name} is set and wins")
            else:
                effective[name] = (value, path)
        for key, value in router.items():
            effective[key] = (value, f"router_settings.{key}")
        with self.collecting():
            self.router_timeouts, effective = router_keys(effective, self.warn)
        redis = {key: effective.pop(key) for key in LITELLM_REDIS_KEYS if key in effective}
        for key in [key for key, (value, _) in redis.items() if isinstance(value, ConfigError)]:
            # An unset variable: reported as itself, never spliced into the Redis URL.
            self.errors.append(redis.pop(key)[0])
        with self.collecting():
            for field, (value, path) in litellm_redis(redis).items():
                self.put("state", field, value, path)
        for key, (value, path) in effective.items():
            with self.collecting():
                self.setting(key, value, path)
        if "default_fallbacks" in effective:
            with self.collecting():
                self.default_fallbacks(*effective["default_fallbacks"])

    def setting(self, key: Any, value: Any, path: str) -> None:
        """One key of the router's settings (``router_settings`` over ``litellm_settings``)."""
        if key in SETTINGS:
            section, field = SETTINGS[key]
            self.put(section, field, value, path)
            if key == "routing_strategy":
                self.origins["routing"] = path
        elif key in FALLBACKS:
            self.fallbacks(FALLBACKS[key], value, path)
        elif key == "default_fallbacks":
            pass  # after the group lists, which win over it
        elif key == "routing_strategy_args":
            self.strategy_args(value, path)
        elif key == "model_group_alias":
            self.aliases(value, path)
        elif key in ("enable_tag_filtering", "tag_filtering_match_any"):
            if value is False:
                self.warn(
                    path,
                    "turnout always filters by tags and accepts a deployment carrying any "
                    "of the request's tags; false is not supported",
                )
        else:
            self.unknown(path, key, _SETTINGS_KEYS, SETTINGS_REASONS.get(key, UNKNOWN_REASON))

    def default_fallbacks(self, value: Any, path: str) -> None:
        """``default_fallbacks``, once the group lists (which win over it) are read."""
        general = self.router.setdefault("fallbacks", {}).setdefault("general", {})
        if "*" in general:
            self.ignore(path, "a '*' entry in fallbacks is set and wins")
        else:
            general["*"] = [
                text(name, f"{path}[{i}]") for i, name in enumerate(sequence(value, path))
            ]
            self.origins["fallbacks.general.*"] = path

    def timeouts(self, data: Mapping[Any, Any]) -> None:
        """Each deployment's per-call limits, its own or the router's (see
        `turnout.config.litellm_timeouts`), and a warning for any not under the deadline."""
        limits = []
        for out in self.deployments:
            fields = deployment_timeouts(out.timeouts, self.router_timeouts, self.warn)
            for name, (value, origin) in fields.items():
                out.put_in("timeouts", name, value, origin)
            limits.append(fields)
        deadline = data.get("timeout", DEFAULT_DEADLINE)
        warn_past_deadline(limits, deadline, "timeout" if "timeout" in data else "", self.warn)

    def priority_tiers(self) -> None:
        """LiteLLM tries ``order`` tiers under any strategy; turnout's ``priority`` strategy does.

        LiteLLM's default, simple-shuffle, with ``order`` is exactly turnout's ``priority``
        (weighted random within the lowest available tier), so that strategy is chosen. With
        another strategy, the tiers are not applied, and each ``order`` says so.
        """
        if not self.orders:
            return
        routing = self.router.get("routing", {})
        strategy = routing.get("strategy", "simple-shuffle")
        if strategy in ("simple-shuffle", "weighted-random"):
            origin = self.origins.get("routing.strategy", self.orders[0])
            self.put("routing", "strategy", "priority", origin)
            self.origins.setdefault("routing", origin)
            self.warn(
                origin,
                "read as turnout's priority strategy: weighted random within the lowest order "
                "tier available, as LiteLLM does",
            )
            return
        for path in self.orders:
            self.ignore(
                path,
                f"turnout applies order tiers only with the priority strategy, "
                f"not with {strategy!r}",
            )

    def fallbacks(self, kind: str, value: Any, path: str) -> None:
        """``[{"a": ["b", "c"]}, ...]`` -> ``{"a": ["b", "c"]}``; a group's first entry wins."""
        table = self.router.setdefault("fallbacks", {}).setdefault(kind, {})
        for index, item in enumerate(sequence(value, path)):
            item_path = f"{path}[{index}]"
            for source, targets in mapping(item, item_path).items():
                source_path = f"{item_path}.{source}"
                name = text(source, source_path)
                if name in table:
                    self.ignore(source_path, f"an earlier entry for {name!r} wins")
                    continue
                table[name] = [
                    text(target, f"{source_path}[{i}]")
                    for i, target in enumerate(sequence(targets, source_path))
                ]
                self.origins[f"fallbacks.{kind}.{name}"] = source_path

    def strategy_args(self, value: Any, path: str) -> None:
        for key, arg in mapping(value, path).items():
            if key == "lowest_latency_buffer":
                self.put("routing", "latency_buffer", arg, f"{path}.{key}")
            else:
                self.unknown(f"{path}.{key}", key, STRATEGY_ARGS, UNKNOWN_REASON)

    def aliases(self, value: Any, path: str) -> None:
        aliases: dict[str, Any] = self.router.setdefault("aliases", {})
        for alias, target in mapping(value, path).items():
            alias_path = f"{path}.{alias}"
            if isinstance(target, Mapping):
                for key, setting in target.items():
                    if key == "hidden" and setting:
                        self.warn(
                            f"{alias_path}.hidden",
                            "not supported yet: the alias is not hidden",
                        )
                    elif key not in ("model", "hidden"):
                        known = ("model", "hidden")
                        self.unknown(f"{alias_path}.{key}", key, known, UNKNOWN_REASON)
                if "model" not in target:
                    raise ConfigError("missing: the model group it names", path=alias_path)
                target = target["model"]
                alias_path = f"{alias_path}.model"
            aliases[alias] = text(target, alias_path)
            self.origins[f"aliases.{alias}"] = alias_path


__all__ = [
    "LITELLM_SECTIONS",
    "PROVIDERS",
    "LiteLLMImport",
    "convert_litellm",
    "import_litellm",
    "is_litellm_config",
]
