"""Provider settings: what each family of providers needs besides the request, typed and checked
when the config is loaded.

A deployment's ``params`` hold two kinds of values, in every config format (turnout's YAML,
LiteLLM's ``litellm_params``, a `Deployment` built in code):

- defaults for the request's own fields (``temperature``, ``max_tokens``, ``user``, Gemini's
  ``safety_settings``...). They stay in `Deployment.params`; a caller's own value wins.
- settings of the provider that serves the deployment: credentials, region, endpoint, and the
  ``extra_headers`` and ``extra_body`` its adapter adds to every call. Those two are settings,
  not request defaults: headers are not request fields (and often carry credentials), and
  ``extra_body`` goes into the provider's *native* body after translation, so each family
  applies them in its own way.

`resolve_settings` moves the settings out of ``params`` into the struct of the deployment's
family (`settings_type`, chosen by its provider name) and checks them there, once: a wrong type,
a setting that belongs to another family, or an unknown key in a family's own namespace
(``aws_*`` for Bedrock) is a `ConfigError` naming ``params.<key>``; the loader puts the
deployment's path in front (``model_list[2].params.aws_region_name``, or
``model_list[2].litellm_params.aws_region_name`` for a LiteLLM file). Adapters then read typed
fields and check nothing per request.

Credentials are `Secret`s, and the repr of the extra headers and body masks values whose names
say they are credentials, so no repr of a deployment shows one. Each struct's fields are the one
list of its keys: the LiteLLM import, the ids of deployments and the redactor's collection of
credentials read them from here.

In code, settings may also be given directly: ``Deployment(provider="bedrock",
settings=BedrockSettings(aws_region_name="us-east-1"))``. A file may give ``settings`` too, with
its ``family`` tag (the shape `msgspec.to_builtins` writes), instead of the keys in ``params``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from msgspec import Struct, field

from turnout.config.decoding import convert
from turnout.config.simulated import Behaviour
from turnout.config.urls import check_base_url
from turnout.errors import ConfigError
from turnout.secrets import Secret, masked


class ProviderSettings(
    Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="family"
):
    """What every family's settings share: the ``family`` tag that names them."""

    #: Key prefixes this family owns: an unknown key with one is a mistake, not a default.
    PREFIXES: ClassVar[tuple[str, ...]] = ()
    #: Why such a key is refused.
    UNSUPPORTED: ClassVar[str] = ""
    #: Settings the family cannot do without: a deployment lacking one is refused at load.
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    def given(self) -> dict[str, Any]:
        """The settings that differ from the defaults, secrets revealed: what a config's
        ``params`` would hold for them (a deployment's id is derived from it)."""
        blank = type(self)()
        out: dict[str, Any] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value != getattr(blank, name):
                out[name] = value.reveal() if isinstance(value, Secret) else value
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.__rich_repr__())
        return f"{type(self).__name__}({shown})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [(name, masked(getattr(self, name))) for name in self.__struct_fields__]


class HttpSettings(ProviderSettings, frozen=True, kw_only=True):
    """What every family that calls an HTTP API takes."""

    #: HTTP headers sent with every call (``anthropic-beta``, a gateway's own auth...).
    extra_headers: dict[str, str] = field(default_factory=dict)
    #: Fields merged into the provider's native body (what the adapter set wins).
    extra_body: dict[str, Any] = field(default_factory=dict)


class OpenAISettings(HttpSettings, frozen=True, kw_only=True, tag="openai"):
    """OpenAI and every OpenAI-compatible provider (any provider name of no other family)."""

    #: Sent as the ``OpenAI-Organization`` header.
    organization: str | None = None
    #: Whether the deployment takes the gateway's Responses API requests as they are, at its
    #: ``/responses`` endpoint, rather than translated to chat (providers ``openai`` and
    #: ``azure``). None: yes for OpenAI's own API (provider ``openai`` with no ``base_url``),
    #: no for every other server, which may copy OpenAI's chat API without ``/responses``.
    native_responses: bool | None = None


class AzureSettings(OpenAISettings, frozen=True, kw_only=True, tag="azure"):
    """Azure OpenAI: OpenAI's settings, and Microsoft Entra ID auth."""

    #: An Entra ID access token, sent as the bearer token instead of the api-key header.
    azure_ad_token: Secret | None = None


class AnthropicSettings(HttpSettings, frozen=True, kw_only=True, tag="anthropic"):
    """Anthropic's Messages API: the extra headers and body only."""


class GeminiSettings(HttpSettings, frozen=True, kw_only=True, tag="gemini"):
    """Gemini, through the Generative Language API or (with a project) Vertex AI."""

    #: The Google Cloud project: its presence selects Vertex AI.
    vertex_project: str | None = None
    #: The Vertex AI location (default ``us-central1``; ``global`` is served too).
    vertex_location: str | None = None


class VertexAnthropicSettings(AnthropicSettings, frozen=True, kw_only=True, tag="vertex_anthropic"):
    """Claude on Vertex AI: Anthropic's extra headers and body, and where Vertex AI serves it.

    Both are required: Claude is served only in some locations (``global`` among them), so
    no default would be right for most projects.
    """

    REQUIRED = ("vertex_project", "vertex_location")

    #: The Google Cloud project whose Vertex AI serves the model.
    vertex_project: str | None = None
    #: The Vertex AI location (``us-east5``, ``europe-west1``, ``global``...).
    vertex_location: str | None = None


class BedrockSettings(HttpSettings, frozen=True, kw_only=True, tag="bedrock"):
    """Amazon Bedrock: region, endpoint and static credentials (else the environment's)."""

    PREFIXES = ("aws_",)
    UNSUPPORTED = "turnout's bedrock provider signs with static credentials or an API key"

    aws_region_name: str | None = None
    aws_access_key_id: Secret | None = None
    aws_secret_access_key: Secret | None = None
    aws_session_token: Secret | None = None
    #: The Bedrock Runtime endpoint, when not the region's (a ``base_url`` wins over it).
    aws_bedrock_runtime_endpoint: str | None = None
    #: Cohere Embed's ``input_type`` (default ``search_document``).
    input_type: str | None = None

    def __post_init__(self) -> None:
        if self.aws_bedrock_runtime_endpoint:
            check_base_url(self.aws_bedrock_runtime_endpoint, "aws_bedrock_runtime_endpoint")
        if bool(self.aws_access_key_id) != bool(self.aws_secret_access_key):
            given, missing = "aws_access_key_id", "aws_secret_access_key"
            if self.aws_secret_access_key:
                given, missing = missing, given
            # Half a pair is never completed from the environment's keys: refuse it.
            raise ConfigError(f"{given} is set but {missing} is not: give both", path=missing)
        if self.aws_session_token and not self.aws_access_key_id:
            raise ConfigError(
                "a session token goes with the keys it was issued for: give aws_access_key_id "
                "and aws_secret_access_key too",
                path="aws_session_token",
            )


class SimulatedSettings(ProviderSettings, frozen=True, kw_only=True, tag="simulated"):
    """The built-in simulated provider: how the deployment behaves."""

    simulate: Behaviour = field(default_factory=Behaviour)


#: Every family's settings, as the type of `Deployment.settings`.
Settings = (
    OpenAISettings
    | AzureSettings
    | AnthropicSettings
    | GeminiSettings
    | VertexAnthropicSettings
    | BedrockSettings
    | SimulatedSettings
)

#: Provider names of the families other than the OpenAI-compatible one.
FAMILIES: Mapping[str, type[Settings]] = {
    "azure": AzureSettings,
    "anthropic": AnthropicSettings,
    "gemini": GeminiSettings,
    "vertex_anthropic": VertexAnthropicSettings,
    "bedrock": BedrockSettings,
    "simulated": SimulatedSettings,
}

#: Setting name -> the families that have it.
_OWNERS: dict[str, list[str]] = {}
for _kind in (OpenAISettings, *FAMILIES.values()):
    for _name in _kind.__struct_fields__:
        _OWNERS.setdefault(_name, []).append(str(_kind.__struct_config__.tag))


def settings_type(provider: str) -> type[Settings]:
    """The settings struct of `provider`'s family: OpenAI-compatible unless named otherwise
    (an unknown name is refused where the providers are built)."""
    return FAMILIES.get(provider, OpenAISettings)


def setting_names(provider: str) -> tuple[str, ...]:
    """The keys of `provider`'s settings."""
    return settings_type(provider).__struct_fields__


def is_setting(name: str) -> bool:
    """Whether `name` is a setting of any family."""
    return name in _OWNERS


def resolve_settings(
    provider: str, params: Mapping[str, Any], settings: ProviderSettings | None
) -> tuple[dict[str, Any], Settings]:
    """(the request defaults among `params`, the typed settings of `provider`'s family).

    The settings come from `params` or, given in code, from `settings` (not both); a bad one is a
    `ConfigError` naming ``params.<key>`` (or ``settings``).
    """
    kind = settings_type(provider)
    own = kind.__struct_fields__
    defaults: dict[str, Any] = {}
    found: dict[str, Any] = {}
    for name, value in params.items():
        if name in own:
            found[name] = value
        else:
            _refuse_foreign(kind, provider, name)
            defaults[name] = value
    if found.get("native_responses") is True and provider not in RESPONSES_PROVIDERS:
        raise ConfigError(
            f"provider {provider!r} is not sent Responses requests natively: only "
            f"{' and '.join(RESPONSES_PROVIDERS)} deployments speak OpenAI's Responses API",
            path="params.native_responses",
        )
    if settings is None:
        if "extra_headers" in found:
            found["extra_headers"] = _header_texts(found["extra_headers"])
        return defaults, _complete(convert(found, kind, at="params"), "params")
    if type(settings) is not kind:
        raise ConfigError(
            f"provider {provider!r} takes {kind.__name__}, not {type(settings).__name__}",
            path="settings",
        )
    if found:
        name = next(iter(found))
        raise ConfigError(
            "also given in settings: give each setting in one place",
            path=f"params.{name}",
        )
    return defaults, _complete(settings, "settings")


#: The providers whose deployments may take Responses requests natively (`native_responses`).
RESPONSES_PROVIDERS = ("openai", "azure")

S = TypeVar("S", bound=ProviderSettings)


def settings_of(settings: ProviderSettings | None, kind: type[S]) -> S:
    """`settings` as the `kind` its adapter reads (as loading made them: a check for the type
    checker, never a failure unless an adapter is handed another family's deployment)."""
    if isinstance(settings, kind):
        return settings
    raise TypeError(f"expected {kind.__name__}, got {type(settings).__name__}")


def _complete(settings: S, at: str) -> S:
    """`settings`, once each of its family's `REQUIRED` settings is known to be given."""
    for name in settings.REQUIRED:
        if not getattr(settings, name):
            family = settings.__struct_config__.tag
            raise ConfigError(f"missing: {family} deployments need it", path=f"{at}.{name}")
    return settings


def _refuse_foreign(kind: type[Settings], provider: str, name: str) -> None:
    owners = _OWNERS.get(name)
    if owners:
        raise ConfigError(
            f"a setting of {' and '.join(owners)} deployments, which provider {provider!r} "
            "does not take",
            path=f"params.{name}",
        )
    if kind.PREFIXES and name.startswith(kind.PREFIXES):
        raise ConfigError(f"not supported: {kind.UNSUPPORTED}", path=f"params.{name}")


def _header_texts(value: Any) -> Any:
    """Header values written as numbers or booleans, as the text they are sent as."""
    if not isinstance(value, Mapping):
        return value  # the conversion names the type
    return {
        name: str(item) if isinstance(item, bool | int | float) else item
        for name, item in value.items()
    }


__all__ = [
    "FAMILIES",
    "AnthropicSettings",
    "AzureSettings",
    "BedrockSettings",
    "GeminiSettings",
    "HttpSettings",
    "OpenAISettings",
    "ProviderSettings",
    "Settings",
    "SimulatedSettings",
    "VertexAnthropicSettings",
    "is_setting",
    "resolve_settings",
    "setting_names",
    "settings_of",
    "settings_type",
]
