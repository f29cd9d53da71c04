"""LiteLLM's config.yaml, read as turnout's config.

`convert_litellm` turns a parsed LiteLLM config into plain data in turnout's shapes (the router's
config, the server's) and a list of warnings: one line per key turnout ignores or reads
differently, each naming its path in the LiteLLM file. It checks only what it must look at to
convert (the shape of sections, model strings, group names); types and ranges are checked once,
by `turnout.config.parse_router_config`, and `LiteLLMImport.source_path` turns the paths of its
errors back into the LiteLLM file's paths.

What maps where (LiteLLM -> turnout):

- ``model_list[i]``: ``model_name``; ``litellm_params.model`` ``<provider>/<model>`` -> provider
  and model (a bare name -> openai); ``api_key``; ``api_base`` -> ``base_url``; ``api_version``;
  ``rpm``; ``tpm``; ``weight``; ``order`` -> ``priority``; ``timeout`` (or ``request_timeout``)
  and ``stream_timeout`` -> ``timeouts`` (per-call limits: `turnout.config.litellm_timeouts`);
  ``max_parallel_requests``; costs; ``tags``;
  ``cooldown_time``; request parameters -> ``params``; the settings of the deployment's provider
  family (`turnout.config.providers`) -> ``params`` too, which moves them into its typed
  settings (another family's settings are ignored, with a warning);
  ``drop_params`` (also module-wide from ``litellm_settings``);
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
that reports it, and is raised here only where the value is needed to convert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from turnout.config.litellm_store import import_store
from turnout.config.litellm_timeouts import (
    DEFAULT_DEADLINE,
    DEPLOYMENT_KEYS,
    TimeoutKeys,
    deployment_timeouts,
    router_keys,
    warn_past_deadline,
)
from turnout.config.providers import is_setting, setting_names
from turnout.config.state import LITELLM_REDIS_KEYS, litellm_redis
from turnout.errors import ConfigError

#: Top-level sections only a LiteLLM config has.
LITELLM_SECTIONS: Final = (
    "router_settings",
    "litellm_settings",
    "general_settings",
    "environment_variables",
    "credential_list",
)

#: LiteLLM's provider prefixes -> turnout's provider names.
PROVIDERS: Final[Mapping[str, str]] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "openai_like": "openai",
    "custom_openai": "openai",
    "azure": "azure",
    "azure_ai": "azure",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex_ai": "gemini",
    "bedrock": "bedrock",
    "groq": "groq",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "openrouter": "openrouter",
    "hosted_vllm": "vllm",
    "vllm": "vllm",
    "ollama": "ollama",
    "ollama_chat": "ollama",
}

#: ``litellm_params`` keys that are deployment fields in turnout.
_FIELDS: Final[Mapping[str, str]] = {
    "api_key": "api_key",
    "api_base": "base_url",
    "base_url": "base_url",
    "api_version": "api_version",
    "rpm": "rpm",
    "tpm": "tpm",
    "weight": "weight",
    "order": "priority",
    "max_parallel_requests": "max_parallel_requests",
    "input_cost_per_token": "input_cost_per_token",
    "output_cost_per_token": "output_cost_per_token",
    "tags": "tags",
    "cooldown_time": "cooldown_time",
    "drop_params": "drop_params",
    # turnout's own, for what a deployment lacks beyond its provider's declaration.
    "unsupported_params": "unsupported_params",
    "supported_params": "supported_params",
}

#: Request parameters sent upstream with every request of the deployment.
_REQUEST_PARAMS: Final = frozenset(
    {
        "temperature",
        "max_tokens",
        "top_p",
        "seed",
        "stop",
        "frequency_penalty",
        "presence_penalty",
        "response_format",
        "user",
    }
)

#: Why particular ``litellm_params`` keys are ignored.
_DEPLOYMENT_REASONS: Final[Mapping[str, str]] = {
    "max_retries": "turnout retries on the group's deployments instead (num_retries)",
    "tag_regex": "not supported yet: list the deployment's tags",
    "region_name": "region filtering is not supported yet",
    "max_budget": "budgets are not supported yet",
    "budget_duration": "budgets are not supported yet",
}

#: ``model_info`` keys that are deployment fields in turnout.
_MODEL_INFO_FIELDS: Final[Mapping[str, str]] = {
    "id": "id",
    "max_input_tokens": "context_window",
    "input_cost_per_token": "input_cost_per_token",
    "output_cost_per_token": "output_cost_per_token",
}

#: ``model_info`` capability flags, as the request parameters they speak of: false adds the
#: parameter to the deployment's ``unsupported_params``, true to its ``supported_params``.
_MODEL_INFO_SUPPORTS: Final[Mapping[str, str]] = {
    "supports_function_calling": "tools",
    "supports_response_schema": "response_format.json_schema",
}

#: ``credential_values`` keys that are deployment fields in turnout.
_CREDENTIAL_FIELDS: Final[Mapping[str, str]] = {
    "api_key": "api_key",
    "api_base": "base_url",
    "base_url": "base_url",
    "api_version": "api_version",
}

#: Routing keys LiteLLM reads from ``litellm_settings`` when ``router_settings`` lacks them.
_SHARED_KEYS: Final = frozenset(
    {
        "num_retries",
        "allowed_fails",
        "cooldown_time",
        "fallbacks",
        "default_fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
    }
)

#: Simple router settings: LiteLLM key -> (turnout section, field).
_SETTINGS: Final[Mapping[str, tuple[str, str]]] = {
    "routing_strategy": ("routing", "strategy"),
    "num_retries": ("retries", "num_retries"),
    "allowed_fails": ("health", "allowed_fails"),
    "cooldown_time": ("health", "cooldown_time"),
    "disable_cooldowns": ("health", "disable_cooldowns"),
    "max_fallbacks": ("fallbacks", "max_depth"),
}

#: Fallback lists: LiteLLM key -> the kind of failure in turnout's ``fallbacks``.
_FALLBACKS: Final[Mapping[str, str]] = {
    "fallbacks": "general",
    "context_window_fallbacks": "context_window",
    "content_policy_fallbacks": "content_policy",
}

_NO_REDIS = (
    "turnout shares routing state in Redis from router_settings' redis_url, or redis_host, "
    "redis_port and redis_password (see state: in turnout's format); it caches no responses"
)
_NO_CACHE = "turnout does not cache responses"
_NO_CALLBACKS = (
    "LiteLLM callbacks are not supported: turnout exports Prometheus metrics at /metrics"
)
_NO_BUDGETS = "budgets are not supported yet"

#: Why particular ``router_settings`` / ``litellm_settings`` keys are ignored.
_SETTINGS_REASONS: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        ("redis_db",),
        "give the database in the URL: router_settings.redis_url: redis://host:6379/1",
    ),
    "cache_kwargs": _NO_REDIS,
    "cache_responses": _NO_CACHE,
    "caching_groups": _NO_CACHE,
    "cache": _NO_CACHE,
    "cache_params": _NO_CACHE,
    "enable_pre_call_checks": (
        "nothing to enable: turnout always checks context windows, rpm and tpm before it picks"
    ),
    "retry_after": (
        "turnout waits between retries with exponential backoff and full jitter "
        "(retries.base_delay, retries.max_delay) and honours a provider's Retry-After; "
        "there is no fixed minimum"
    ),
    "retry_policy": "per-error retry counts are not supported: num_retries applies to all",
    "model_group_retry_policy": "per-group retry policies are not supported",
    "allowed_fails_policy": "per-error allowed fails are not supported: allowed_fails applies",
    "provider_budget_config": _NO_BUDGETS,
    "max_budget": _NO_BUDGETS,
    "timeout": (
        "LiteLLM reads request_timeout here: set request_timeout, or router_settings.timeout"
    ),
    "stream_timeout": "LiteLLM's router reads stream_timeout from router_settings",
    "default_max_parallel_requests": "set max_parallel_requests per deployment",
    "callbacks": _NO_CALLBACKS,
    "success_callback": _NO_CALLBACKS,
    "failure_callback": _NO_CALLBACKS,
    "service_callbacks": _NO_CALLBACKS,
    "set_verbose": "use server.log_level",
    "json_logs": "use server.log_level",
}

_GENERAL_REASON = "a LiteLLM proxy setting turnout does not have"
_UNKNOWN_REASON = "turnout has no equivalent"


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
    """A LiteLLM config as (router config data, server config data, warnings)."""
    imported = import_litellm(data)
    return imported.router, imported.server, imported.warnings


def import_litellm(data: Mapping[Any, Any]) -> LiteLLMImport:
    """Convert a LiteLLM config, keeping the origin of every value (see `LiteLLMImport`)."""
    converter = _Converter()
    converter.convert(data)
    return LiteLLMImport(
        router=converter.router,
        server=converter.server,
        store=converter.store,
        warnings=converter.warnings,
        origins=converter.origins,
    )


@dataclass(slots=True)
class _Credential:
    path: str
    values: Mapping[Any, Any]
    used: bool = False


class _Deployment:
    """One deployment's data in turnout's shape, recording where each value came from."""

    __slots__ = ("data", "origins", "target", "timeouts")

    def __init__(self, target: str, origins: dict[str, str]) -> None:
        self.data: dict[str, Any] = {}
        self.target = target
        self.origins = origins
        #: Its own timeout keys; the router's defaults are applied once the settings are read.
        self.timeouts = TimeoutKeys()

    def put(self, key: str, value: Any, origin: str) -> None:
        self.data[key] = value
        self.origins[f"{self.target}.{key}"] = origin

    def put_in(self, section: str, key: str, value: Any, origin: str) -> None:
        self.data.setdefault(section, {})[key] = value
        self.origins[f"{self.target}.{section}.{key}"] = origin

    def param(self, key: str, value: Any, origin: str) -> None:
        # Provider settings among them move into the deployment's typed settings (credentials
        # as `Secret`) when `Deployment` is built, as for every config format.
        self.put_in("params", key, value, origin)


class _Converter:
    def __init__(self) -> None:
        self.router: dict[str, Any] = {}
        self.server: dict[str, Any] = {}
        self.store: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.origins: dict[str, str] = {}
        self.credentials: dict[str, _Credential] = {}
        #: LiteLLM paths of the deployments' ``order`` keys.
        self.orders: list[str] = []
        self.deployments: list[_Deployment] = []
        #: The router's default per-call limits (``router_settings.timeout``...).
        self.router_timeouts = TimeoutKeys()

    def warn(self, path: str, text: str) -> None:
        self.warnings.append(f"{path}: {text}")

    def ignore(self, path: str, reason: str) -> None:
        self.warn(path, f"ignored: {reason}")

    def put(self, section: str, key: str, value: Any, origin: str) -> None:
        self.router.setdefault(section, {})[key] = value
        self.origins[f"{section}.{key}"] = origin

    # -- the file --------------------------------------------------------------------------------

    def convert(self, data: Mapping[Any, Any]) -> None:
        self.read_credentials(data.get("credential_list"))
        if "model_list" in data:
            self.model_list(data["model_list"])
        self.settings(
            _mapping(data.get("router_settings"), "router_settings"),
            _mapping(data.get("litellm_settings"), "litellm_settings"),
        )
        self.priority_tiers()
        self.timeouts(data)
        # turnout's own server section may sit beside LiteLLM's sections.
        for key, value in _mapping(data.get("server"), "server").items():
            self.server[key] = value
            self.origins[f"server.{key}"] = f"server.{key}"
        general = _mapping(data.get("general_settings"), "general_settings")
        self.store = import_store(
            _mapping(data.get("store"), "store"), general, self.origins, self.warn
        )
        for key, value in general.items():
            path = f"general_settings.{key}"
            if key not in ("master_key", "database_url", "fail_closed_budget_enforcement"):
                # database_url and fail_closed_budget_enforcement: import_store
                self.ignore(path, _GENERAL_REASON)
            elif key == "master_key" and "master_key" in self.server:
                self.ignore(path, "server.master_key is set and wins")
            elif key == "master_key":
                self.server["master_key"] = value
                self.origins["server.master_key"] = path
        for name in _mapping(data.get("environment_variables"), "environment_variables"):
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
                self.ignore(str(key), _UNKNOWN_REASON)
        for name, credential in self.credentials.items():
            if not credential.used:
                self.ignore(credential.path, f"no deployment uses credential {name!r}")

    # -- credentials -----------------------------------------------------------------------------

    def read_credentials(self, value: Any) -> None:
        for index, entry in enumerate(_sequence(value, "credential_list")):
            path = f"credential_list[{index}]"
            entry = _mapping(entry, path)
            name = _text(entry.get("credential_name"), f"{path}.credential_name")
            values = _mapping(entry.get("credential_values"), f"{path}.credential_values")
            for key in entry:
                if key == "credential_info":
                    self.ignore(f"{path}.credential_info", "descriptive only")
                elif key not in ("credential_name", "credential_values"):
                    self.ignore(f"{path}.{key}", _UNKNOWN_REASON)
            for key in values:
                if key not in _CREDENTIAL_FIELDS and not is_setting(key):
                    self.ignore(f"{path}.credential_values.{key}", _UNKNOWN_REASON)
            if name in self.credentials:
                raise ConfigError(
                    f"credential {name!r} is defined twice (also {self.credentials[name].path})",
                    path=f"{path}.credential_name",
                )
            self.credentials[name] = _Credential(path=path, values=values)

    # -- deployments -----------------------------------------------------------------------------

    def model_list(self, value: Any) -> None:
        entries = _sequence(value, "model_list")
        deployments: list[dict[str, Any]] = []
        skipped = []
        for index, entry in enumerate(entries):
            path = f"model_list[{index}]"
            entry = _mapping(entry, path)
            name = entry.get("model_name")
            params = entry.get("litellm_params")
            model = params.get("model") if isinstance(params, Mapping) else None
            wildcard = next(
                (text for text in (name, model) if isinstance(text, str) and "*" in text), None
            )
            if wildcard is not None:
                skipped.append(wildcard)
                self.warn(
                    path,
                    f"skipped: wildcard {wildcard!r}: turnout does not route wildcard model "
                    "names yet; give each model its own entry",
                )
                continue
            target = f"model_list[{len(deployments)}]"
            self.origins[target] = path
            deployments.append(self.deployment(entry, path, target))
        if entries and len(skipped) == len(entries):
            raise ConfigError(
                f"every entry is a wildcard ({', '.join(skipped)}), and turnout does not route "
                "wildcard model names yet: give each model its own entry with its model_name",
                path="model_list",
            )
        self.router["model_list"] = deployments
        self.origins["model_list"] = "model_list"

    def deployment(self, entry: Mapping[Any, Any], path: str, target: str) -> dict[str, Any]:
        out = _Deployment(target, self.origins)
        self.deployments.append(out)
        for key in entry:
            if key == "model_name":
                out.put("model_name", entry[key], f"{path}.model_name")
            elif key not in ("litellm_params", "model_info"):
                self.ignore(f"{path}.{key}", "turnout reads model_name, litellm_params, model_info")
        params_path = f"{path}.litellm_params"
        if "litellm_params" not in entry:
            raise ConfigError("missing: it names the deployment's model", path=params_path)
        params = _mapping(entry["litellm_params"], params_path)
        self.origins[f"{target}.params"] = params_path
        provider, model = self.split_model(params, params_path)
        out.put("provider", provider, f"{params_path}.model")
        out.put("model", model, f"{params_path}.model")
        self.litellm_params(out, provider, params, params_path)
        if "litellm_credential_name" in params:
            self.credential(out, provider, params["litellm_credential_name"], params_path)
        self.model_info(out, entry.get("model_info"), f"{path}.model_info")
        return out.data

    def litellm_params(
        self, out: _Deployment, provider: str, params: Mapping[Any, Any], path: str
    ) -> None:
        settings = setting_names(provider)
        for key, value in params.items():
            origin = f"{path}.{key}"
            if key in ("model", "custom_llm_provider", "litellm_credential_name"):
                continue
            if key in _FIELDS:
                if _FIELDS[key] in out.data:
                    self.ignore(origin, f"{_FIELDS[key]} is already set by another key")
                    continue
                out.put(_FIELDS[key], value, origin)
                if key == "order":
                    self.orders.append(origin)
            elif key in DEPLOYMENT_KEYS:
                out.timeouts.take(key, value, origin, self.warn)
            elif key in _REQUEST_PARAMS or key in settings:
                out.param(key, value, origin)
            elif is_setting(key):
                self.ignore(origin, f"a setting turnout's {provider} provider does not take")
            else:
                self.ignore(origin, _DEPLOYMENT_REASONS.get(key, _UNKNOWN_REASON))

    def credential(self, out: _Deployment, provider: str, value: Any, path: str) -> None:
        """The values of a ``credential_list`` entry, where the deployment sets none itself
        (settings only of the deployment's family: a credential may serve several)."""
        origin = f"{path}.litellm_credential_name"
        name = _text(value, origin)
        credential = self.credentials.get(name)
        if credential is None:
            self.warn(
                origin,
                f"credential {name!r} is not in credential_list: the deployment gets no "
                "credentials from it",
            )
            return
        credential.used = True
        settings = setting_names(provider)
        for key, setting in credential.values.items():
            source = f"{credential.path}.credential_values.{key}"
            field = _CREDENTIAL_FIELDS.get(key)
            if field is not None and field not in out.data:
                out.put(field, setting, source)
            elif key in settings and key not in out.data.get("params", {}):
                out.param(key, setting, source)

    def model_info(self, out: _Deployment, value: Any, path: str) -> None:
        for key, setting in _mapping(value, path).items():
            origin = f"{path}.{key}"
            field = _MODEL_INFO_FIELDS.get(key)
            if key in _MODEL_INFO_SUPPORTS and isinstance(setting, bool):
                target = "supported_params" if setting else "unsupported_params"
                names = set(out.data.get(target) or ())
                out.put(target, sorted(names | {_MODEL_INFO_SUPPORTS[key]}), origin)
            elif field is None:
                self.ignore(origin, _UNKNOWN_REASON)
            elif field in out.data:
                self.ignore(origin, f"litellm_params.{key} is set and wins")
            elif field == "id" and isinstance(setting, int) and not isinstance(setting, bool):
                out.put(field, str(setting), origin)
            else:
                out.put(field, setting, origin)

    def split_model(self, params: Mapping[Any, Any], path: str) -> tuple[str, str]:
        """LiteLLM's ``<provider>/<model>`` (or ``custom_llm_provider``) as (provider, model)."""
        if "model" not in params:
            raise ConfigError("missing: the provider's model, as <provider>/<model>", path=path)
        origin = f"{path}.model"
        model = _text(params["model"], origin)
        if "custom_llm_provider" in params:
            prefix = _text(params["custom_llm_provider"], f"{path}.custom_llm_provider")
            model = model.removeprefix(f"{prefix}/")
            origin = f"{path}.custom_llm_provider"
        elif "/" in model:
            prefix, model = model.split("/", 1)
        else:
            if model.startswith(("claude", "gemini")):
                self.warn(
                    origin,
                    f"no provider prefix: turnout sends {model!r} to openai; "
                    "write <provider>/<model> if another provider serves it",
                )
            return "openai", model
        provider = PROVIDERS.get(prefix)
        if provider is None:
            self.warn(
                origin,
                f"unknown provider {prefix!r}: kept as the provider's name, which turnout "
                "rejects unless a provider of that name is installed",
            )
            return prefix, model
        if prefix == "vertex_ai" and "api_base" not in params and "base_url" not in params:
            self.warn(
                origin,
                "vertex_ai is served by turnout's gemini provider through Vertex AI "
                "(vertex_project, vertex_location); api_key must be an OAuth access token, "
                "as vertex_credentials are not supported",
            )
        return provider, model

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
            elif key not in _SHARED_KEYS and key != "request_timeout":
                self.ignore(path, _SETTINGS_REASONS.get(key, _UNKNOWN_REASON))
            elif name in router:
                self.ignore(path, f"router_settings.{name} is set and wins")
            else:
                effective[name] = (value, path)
        for key, value in router.items():
            effective[key] = (value, f"router_settings.{key}")
        self.router_timeouts, effective = router_keys(effective, self.warn)
        redis = {key: effective.pop(key) for key in LITELLM_REDIS_KEYS if key in effective}
        for field, (value, path) in litellm_redis(redis).items():
            self.put("state", field, value, path)

        for key, (value, path) in effective.items():
            if key in _SETTINGS:
                section, field = _SETTINGS[key]
                self.put(section, field, value, path)
                if key == "routing_strategy":
                    self.origins["routing"] = path
            elif key in _FALLBACKS:
                self.fallbacks(_FALLBACKS[key], value, path)
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
                self.ignore(path, _SETTINGS_REASONS.get(key, _UNKNOWN_REASON))
        if "default_fallbacks" in effective:
            value, path = effective["default_fallbacks"]
            general = self.router.setdefault("fallbacks", {}).setdefault("general", {})
            if "*" in general:
                self.ignore(path, "a '*' entry in fallbacks is set and wins")
            else:
                general["*"] = [
                    _text(name, f"{path}[{i}]") for i, name in enumerate(_sequence(value, path))
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
        for index, item in enumerate(_sequence(value, path)):
            item_path = f"{path}[{index}]"
            for source, targets in _mapping(item, item_path).items():
                source_path = f"{item_path}.{source}"
                name = _text(source, source_path)
                if name in table:
                    self.ignore(source_path, f"an earlier entry for {name!r} wins")
                    continue
                table[name] = [
                    _text(target, f"{source_path}[{i}]")
                    for i, target in enumerate(_sequence(targets, source_path))
                ]
                self.origins[f"fallbacks.{kind}.{name}"] = source_path

    def strategy_args(self, value: Any, path: str) -> None:
        for key, arg in _mapping(value, path).items():
            if key == "lowest_latency_buffer":
                self.put("routing", "latency_buffer", arg, f"{path}.{key}")
            else:
                self.ignore(f"{path}.{key}", _UNKNOWN_REASON)

    def aliases(self, value: Any, path: str) -> None:
        aliases: dict[str, Any] = self.router.setdefault("aliases", {})
        for alias, target in _mapping(value, path).items():
            alias_path = f"{path}.{alias}"
            if isinstance(target, Mapping):
                for key, setting in target.items():
                    if key == "hidden" and setting:
                        self.warn(
                            f"{alias_path}.hidden",
                            "not supported yet: the alias is not hidden",
                        )
                    elif key not in ("model", "hidden"):
                        self.ignore(f"{alias_path}.{key}", _UNKNOWN_REASON)
                if "model" not in target:
                    raise ConfigError("missing: the model group it names", path=alias_path)
                target = target["model"]
                alias_path = f"{alias_path}.model"
            aliases[alias] = _text(target, alias_path)
            self.origins[f"aliases.{alias}"] = alias_path


def _mapping(value: Any, path: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if isinstance(value, ConfigError):
        raise value
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a mapping, got {_kind(value)}", path=path)
    return value


def _sequence(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, ConfigError):
        raise value
    if not isinstance(value, list | tuple):
        raise ConfigError(f"expected a list, got {_kind(value)}", path=path)
    return list(value)


def _text(value: Any, path: str) -> str:
    if isinstance(value, ConfigError):
        raise value
    if not isinstance(value, str) or not value:
        raise ConfigError(f"expected a non-empty string, got {_kind(value)}", path=path)
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


__all__ = [
    "LITELLM_SECTIONS",
    "PROVIDERS",
    "LiteLLMImport",
    "convert_litellm",
    "import_litellm",
    "is_litellm_config",
]
