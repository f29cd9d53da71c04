"""The deployments of a LiteLLM config (``model_list`` and ``credential_list``) in turnout's
shape, each value recording the LiteLLM path it came from.

An entry turnout cannot serve (a provider it lacks, a wildcard) is left out and reported as
skipped; an entry with a problem is reported as an error and left out too, so that one pass
finds the problems of every entry (`turnout.config.litellm_problems`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from turnout.config.litellm_keys import (
    CREDENTIAL_FIELDS,
    DEPLOYMENT_FIELDS,
    DEPLOYMENT_REASONS,
    ENTRY_KEYS,
    MODEL_INFO_FIELDS,
    MODEL_INFO_KEYS,
    MODEL_INFO_REASONS,
    MODEL_INFO_SUPPORTS,
    OTHER_DEPLOYMENT_KEYS,
    PROVIDERS,
    REQUEST_PARAMS,
    UNKNOWN_REASON,
)
from turnout.config.litellm_problems import Problems
from turnout.config.litellm_timeouts import DEPLOYMENT_KEYS, TimeoutKeys
from turnout.config.litellm_values import mapping, sequence, text
from turnout.config.providers import is_setting, setting_names
from turnout.config.router import CAPABILITY_PARAMS
from turnout.errors import ConfigError

#: What turnout's providers serve, by LiteLLM's prefixes, for the error that skips another.
_SERVED = ", ".join(sorted(PROVIDERS))
#: Partner models on Vertex AI (Mistral's, AI21's...), which speak neither Gemini's API nor
#: Anthropic's, the two turnout sends ``vertex_ai`` deployments; partners named
#: ``<publisher>/<model>`` (``meta/llama...``) are caught by their slash.
_VERTEX_PARTNERS = ("mistral", "codestral", "jamba")
#: Anthropic's models on Vertex AI, served by provider ``vertex_anthropic`` (not ``gemini``).
_VERTEX_CLAUDE = "claude"


@dataclass(slots=True)
class Credential:
    path: str
    values: Mapping[Any, Any]
    used: bool = False


class DeploymentData:
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


class DeploymentReader(Problems):
    """Reads ``credential_list`` and ``model_list``; `turnout.config.litellm` the rest."""

    def __init__(self, providers: Collection[str] = ()) -> None:
        super().__init__()
        #: Provider prefixes served besides turnout's own: a library's in-process providers.
        self.extra_providers = frozenset(providers)
        #: turnout path -> LiteLLM path (`LiteLLMImport.origins`).
        self.origins: dict[str, str] = {}
        self.credentials: dict[str, Credential] = {}
        #: LiteLLM paths of the deployments' ``order`` keys.
        self.orders: list[str] = []
        self.deployments: list[DeploymentData] = []
        #: Model groups whose every deployment was skipped -> the path of the first.
        self.skipped_groups: dict[str, str] = {}
        #: Model groups with no deployment left because their entries are in error.
        self.broken_groups: set[str] = set()

    # -- credentials -----------------------------------------------------------------------------

    def read_credentials(self, value: Any) -> None:
        for index, entry in enumerate(sequence(value, "credential_list")):
            with self.collecting():
                self.read_credential(entry, f"credential_list[{index}]")

    def read_credential(self, entry: Any, path: str) -> None:
        entry = mapping(entry, path)
        name = text(entry.get("credential_name"), f"{path}.credential_name")
        values = mapping(entry.get("credential_values"), f"{path}.credential_values")
        for key in entry:
            if key == "credential_info":
                self.ignore(f"{path}.credential_info", "descriptive only")
            elif key not in ("credential_name", "credential_values"):
                known = ("credential_name", "credential_values", "credential_info")
                self.unknown(f"{path}.{key}", key, known, UNKNOWN_REASON)
        for key in values:
            if key not in CREDENTIAL_FIELDS and not is_setting(key):
                self.unknown(
                    f"{path}.credential_values.{key}", key, _deployment_keys(), UNKNOWN_REASON
                )
        if name in self.credentials:
            raise ConfigError(
                f"credential {name!r} is defined twice (also {self.credentials[name].path})",
                path=f"{path}.credential_name",
            )
        self.credentials[name] = Credential(path=path, values=values)

    # -- deployments -----------------------------------------------------------------------------

    def model_list(self, value: Any) -> list[dict[str, Any]]:
        """Each entry as a deployment; an entry with a problem is reported and left out, so
        the rest is still checked (and, for a skipped one, served)."""
        entries = sequence(value, "model_list")
        deployments: list[dict[str, Any]] = []
        loaded: set[str] = set()
        skipped: dict[str, str] = {}
        broken: set[str] = set()
        wildcards = []
        for index, entry in enumerate(entries):
            path = f"model_list[{index}]"
            with self.collecting():
                entry = mapping(entry, path)
                group = entry.get("model_name")
                broken.add(str(group))  # until it converts
                reason = self.skip_reason(entry, path)
                if reason is not None:
                    self.skipped.append(reason)
                    wildcard = _wildcard(entry)
                    if wildcard is not None:
                        wildcards.append(wildcard)
                    if isinstance(group, str):
                        skipped.setdefault(group, path)
                    continue
                target = f"model_list[{len(deployments)}]"
                known = set(self.origins)
                try:
                    deployments.append(self.deployment(entry, path, target))
                except ConfigError:
                    # The next entry converts to the same target: no stale origins for it.
                    for key in set(self.origins) - known:
                        del self.origins[key]
                    raise
                self.origins[target] = path
                loaded.add(str(group))
                broken.discard(str(group))
        if entries and len(wildcards) == len(entries):
            raise ConfigError(
                f"every entry is a wildcard ({', '.join(wildcards)}), and turnout does not "
                "route wildcard model names yet: give each model its own entry with its "
                "model_name",
                path="model_list",
            )
        self.skipped_groups = {name: at for name, at in skipped.items() if name not in loaded}
        self.broken_groups = broken - loaded - set(skipped)
        return deployments

    def skip_reason(self, entry: Mapping[Any, Any], path: str) -> str | None:
        """Why an entry is left out (a wildcard, a provider turnout lacks), naming its path."""
        wildcard = _wildcard(entry)
        if wildcard is not None:
            return (
                f"{path}: skipped: wildcard {wildcard!r}: turnout does not route wildcard "
                "model names yet; give each model its own entry"
            )
        params = entry.get("litellm_params")
        model = params.get("model") if isinstance(params, Mapping) else None
        if not isinstance(params, Mapping) or not isinstance(model, str):
            return None
        origin = f"{path}.litellm_params.model"
        prefix = params.get("custom_llm_provider")
        if isinstance(prefix, str):
            origin = f"{path}.litellm_params.custom_llm_provider"
        elif "/" in model:
            prefix = model.split("/", 1)[0]
        if prefix == "vertex_ai":
            served = model.split("/", 1)[1] if model.startswith("vertex_ai/") else model
            if served.startswith(_VERTEX_PARTNERS) or "/" in served:
                return (
                    f"{origin}: {served!r} on Vertex AI is not supported: turnout serves "
                    "Vertex AI's Gemini and Claude models, and the other partner models there "
                    "take another API"
                )
        if not isinstance(prefix, str) or prefix in PROVIDERS or prefix in self.extra_providers:
            return None
        return f"{origin}: provider {prefix!r} is not supported (turnout serves: {_SERVED})"

    def deployment(self, entry: Mapping[Any, Any], path: str, target: str) -> dict[str, Any]:
        out = DeploymentData(target, self.origins)
        for key in entry:
            if key == "model_name":
                out.put("model_name", entry[key], f"{path}.model_name")
            elif key not in ("litellm_params", "model_info"):
                reason = "turnout reads model_name, litellm_params, model_info"
                self.unknown(f"{path}.{key}", key, ENTRY_KEYS, reason)
        params_path = f"{path}.litellm_params"
        if "litellm_params" not in entry:
            raise ConfigError("missing: it names the deployment's model", path=params_path)
        params = mapping(entry["litellm_params"], params_path)
        self.origins[f"{target}.params"] = params_path
        provider, model = self.split_model(params, params_path)
        out.put("provider", provider, f"{params_path}.model")
        out.put("model", model, f"{params_path}.model")
        self.litellm_params(out, provider, params, params_path)
        if "litellm_credential_name" in params:
            self.credential(out, provider, params["litellm_credential_name"], params_path)
        self.model_info(out, entry.get("model_info"), f"{path}.model_info")
        self.deployments.append(out)
        return out.data

    def litellm_params(
        self, out: DeploymentData, provider: str, params: Mapping[Any, Any], path: str
    ) -> None:
        settings = setting_names(provider)
        for key, value in params.items():
            origin = f"{path}.{key}"
            if key in ("model", "custom_llm_provider", "litellm_credential_name"):
                continue
            if key in DEPLOYMENT_FIELDS:
                if DEPLOYMENT_FIELDS[key] in out.data:
                    self.ignore(origin, f"{DEPLOYMENT_FIELDS[key]} is already set by another key")
                    continue
                out.put(DEPLOYMENT_FIELDS[key], value, origin)
                if key == "order":
                    self.orders.append(origin)
            elif key in DEPLOYMENT_KEYS:
                out.timeouts.take(key, value, origin, self.warn)
            elif key in REQUEST_PARAMS or key in settings:
                out.param(key, value, origin)
            elif is_setting(key):
                self.ignore(origin, f"a setting turnout's {provider} provider does not take")
            elif key == "additional_drop_params":
                self.additional_drops(out, value, origin)
            else:
                reason = DEPLOYMENT_REASONS.get(key, UNKNOWN_REASON)
                self.unknown(origin, key, _deployment_keys(), reason)

    def additional_drops(self, out: DeploymentData, value: Any, path: str) -> None:
        """LiteLLM's ``additional_drop_params``: parameters never sent to this deployment.

        turnout drops a parameter the deployment lacks when it has ``drop_params``; so the
        names it can check (`CAPABILITY_PARAMS`) become what the deployment lacks, and the
        deployment drops what it lacks (which LiteLLM would refuse without ``drop_params``).
        """
        names = [text(name, f"{path}[{i}]") for i, name in enumerate(sequence(value, path))]
        lacked = sorted(set(out.data.get("unsupported_params") or ()) | set(names))
        unknown = [name for name in names if name not in CAPABILITY_PARAMS]
        if unknown:
            self.ignore(
                path,
                f"turnout drops only parameters it checks ({', '.join(CAPABILITY_PARAMS)}); "
                f"{', '.join(map(repr, unknown))} would still be sent, so the key is not applied",
            )
            return
        out.put("unsupported_params", lacked, path)
        if out.data.get("drop_params") is not True:
            out.put("drop_params", True, path)
            self.warn(
                path,
                "read as unsupported_params with drop_params: any other parameter the "
                "deployment's provider lacks is dropped too, not refused",
            )

    def credential(self, out: DeploymentData, provider: str, value: Any, path: str) -> None:
        """The values of a ``credential_list`` entry, where the deployment sets none itself
        (settings only of the deployment's family: a credential may serve several)."""
        origin = f"{path}.litellm_credential_name"
        name = text(value, origin)
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
            field = CREDENTIAL_FIELDS.get(key)
            if field is not None and field not in out.data:
                out.put(field, setting, source)
            elif key in settings and key not in out.data.get("params", {}):
                out.param(key, setting, source)

    def model_info(self, out: DeploymentData, value: Any, path: str) -> None:
        for key, setting in mapping(value, path).items():
            origin = f"{path}.{key}"
            field = MODEL_INFO_FIELDS.get(key)
            if key in MODEL_INFO_SUPPORTS and isinstance(setting, bool):
                target = "supported_params" if setting else "unsupported_params"
                names = set(out.data.get(target) or ())
                out.put(target, sorted(names | {MODEL_INFO_SUPPORTS[key]}), origin)
            elif field is None:
                reason = MODEL_INFO_REASONS.get(key, UNKNOWN_REASON)
                if not (isinstance(key, str) and key.startswith("supports_")):
                    self.unknown(origin, key, MODEL_INFO_KEYS, reason)
                else:
                    self.ignore(origin, reason)
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
        model = text(params["model"], origin)
        if "custom_llm_provider" in params:
            prefix = text(params["custom_llm_provider"], f"{path}.custom_llm_provider")
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
        provider = PROVIDERS.get(prefix, prefix if prefix in self.extra_providers else None)
        if provider is None:  # `skip_reason` leaves such an entry out before it gets here
            raise ConfigError(f"provider {prefix!r} is not supported", path=origin)
        if prefix == "vertex_ai" and model.startswith(_VERTEX_CLAUDE):
            provider = "vertex_anthropic"
        if prefix == "vertex_ai" and "api_base" not in params and "base_url" not in params:
            self.warn(
                origin,
                f"vertex_ai is served by turnout's {provider} provider through Vertex AI "
                "(vertex_project, vertex_location); api_key must be an OAuth access token, "
                "as vertex_credentials are not supported",
            )
        return provider, model


def _wildcard(entry: Mapping[Any, Any]) -> str | None:
    """The entry's model name or model when it is a wildcard (``openai/*``, ``*``)."""
    params = entry.get("litellm_params")
    model = params.get("model") if isinstance(params, Mapping) else None
    for value in (entry.get("model_name"), model):
        if isinstance(value, str) and "*" in value:
            return value
    return None


@cache
def _deployment_keys() -> frozenset[str]:
    """Every ``litellm_params`` key turnout knows of, its providers' settings included."""
    families = {*PROVIDERS.values()}
    return frozenset(
        {
            *DEPLOYMENT_FIELDS,
            *DEPLOYMENT_KEYS,
            *REQUEST_PARAMS,
            *DEPLOYMENT_REASONS,
            *OTHER_DEPLOYMENT_KEYS,
            *(name for family in families for name in setting_names(family)),
        }
    )
