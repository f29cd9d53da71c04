"""Known list prices and context windows, for deployments whose config names none.

`known_model` finds a model in the built-in table (`turnout.pricing.table`) of the family that
serves the deployment's provider; `with_known_prices` fills a deployment's unset price and
context-window fields from it. A value the config sets always wins.

Lookup of a model name, within its family's table:

1. the name as given (lower-cased), then the normalised forms, each tried whole: the part after
   the last ``/`` (vendor prefixes such as ``meta-llama/``, ``accounts/fireworks/models/``),
   then with version and date suffixes stripped one at a time: ``:0``, ``@20241022``, ``-v2``,
   ``-2024-08-06``, ``-20241022``, ``-0613``, ``-001``, ``-latest``;
2. failing that, the longest table key of which a form is an extension: the key, then a
   separator (``-``, ``.`` or ``_``), then a suffix that names no other model. A suffix that
   starts with a digit is another version (``claude-opus-4`` is not ``claude-opus-4-5``) and one
   that starts with a variant word is another model (``gpt-4o`` is not ``gpt-4o-mini``,
   ``o4-mini`` is not ``o4-mini-deep-research``), so neither matches: ``gpt-4o-search-preview``
   gets no price rather than a wrong one, while ``gemini-2.5-flash-preview-05-20`` gets Gemini
   2.5 Flash's.

Provider names map to families: ``azure`` has its own table (Azure's global prices); Azure
deployments are usually named by their owner, so prices apply only when ``model`` is a known
model name. ``bedrock`` strips inference-profile region prefixes (``us.``, ``eu.``, ...) and sends
``anthropic.*`` ids to the Anthropic table; ``openrouter`` picks the family from the vendor part
of ``vendor/model`` and gives no price to variant tags such as ``:free``. Self-hosted providers
(``vllm``, ``ollama``, ``openai-compatible``) and ``simulated`` have no built-in prices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from turnout.config.router import Deployment
from turnout.pricing.table import FAMILIES, ModelPrice

__all__ = ["ModelPrice", "known_model", "with_known_prices"]

#: Provider name -> price family, for providers that serve one vendor's models.
_PROVIDER_FAMILY: Mapping[str, str] = {
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "bedrock": "bedrock",
    "groq": "groq",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "together": "together",
    "fireworks": "fireworks",
}

#: OpenRouter's vendor prefix -> price family (OpenRouter bills these at the vendor's prices).
_OPENROUTER_VENDORS: Mapping[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gemini",
    "mistralai": "mistral",
    "deepseek": "deepseek",
}

#: Bedrock cross-region inference profiles prefix the model id with a geography.
_BEDROCK_REGION = re.compile(r"^(?:us-gov|us|eu|apac|ap|ca|jp|au|global)\.")

#: One version or date suffix; stripped repeatedly, one at a time.
_SUFFIX = re.compile(
    r"(?::\d+|@[\w.-]+|-v\d+|-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{3,4}|-latest)$",
)

_SEPARATORS = frozenset("-._")

#: A suffix starting with one of these names a different model, not a version of the same.
_VARIANTS = frozenset(
    {
        "audio",
        "codex",
        "deep",
        "embed",
        "embedding",
        "fast",
        "flash",
        "haiku",
        "image",
        "instant",
        "large",
        "lite",
        "max",
        "medium",
        "micro",
        "mini",
        "nano",
        "opus",
        "plus",
        "pro",
        "realtime",
        "research",
        "search",
        "small",
        "sonnet",
        "thinking",
        "tiny",
        "transcribe",
        "tts",
        "turbo",
        "ultra",
        "vision",
    }
)


def known_model(provider: str, model: str) -> ModelPrice | None:
    """The built-in prices and context window of `model` as served by `provider`, if known."""
    name = model.strip().lower()
    if provider == "openrouter":
        vendor, slash, rest = name.partition("/")
        family = _OPENROUTER_VENDORS.get(vendor) if slash else None
        if family is None or ":" in rest:
            return None
        return _lookup(family, rest)
    if provider == "bedrock":
        name = _BEDROCK_REGION.sub("", name.rsplit("/", 1)[-1])
        if name.startswith("anthropic."):
            return _lookup("anthropic", name.removeprefix("anthropic."))
        return _lookup("bedrock", name)
    family = _PROVIDER_FAMILY.get(provider)
    return None if family is None else _lookup(family, name)


def with_known_prices(deployment: Deployment) -> Deployment:
    """`deployment` with its unset prices and context window taken from the built-in table.

    Only fields the config leaves None are filled; the same object comes back when nothing
    changes. A cached-input price is not filled when it would exceed the deployment's own input
    price (a negotiated price below the list's cache price). The id is kept.
    """
    fields = (
        deployment.input_cost_per_token,
        deployment.output_cost_per_token,
        deployment.cached_input_cost_per_token,
        deployment.context_window,
    )
    if all(value is not None for value in fields):
        return deployment
    known = known_model(deployment.provider, deployment.model)
    if known is None:
        return deployment
    changes: dict[str, Any] = {}
    if deployment.input_cost_per_token is None:
        changes["input_cost_per_token"] = known.input
    if deployment.output_cost_per_token is None:
        changes["output_cost_per_token"] = known.output
    if deployment.cached_input_cost_per_token is None and known.cached_input is not None:
        input_price = deployment.input_cost_per_token
        if input_price is None or known.cached_input <= input_price:
            changes["cached_input_cost_per_token"] = known.cached_input
    if deployment.context_window is None and known.context_window is not None:
        changes["context_window"] = known.context_window
    if not changes:
        return deployment
    return msgspec.structs.replace(deployment, **changes)


def _lookup(family: str, name: str) -> ModelPrice | None:
    table = FAMILIES[family]
    forms = _forms(family, name)
    for form in forms:
        if form in table:
            return table[form]
    for form in forms:
        best = max((key for key in table if _extends(form, key)), key=len, default=None)
        if best is not None:
            return table[best]
    return None


def _forms(family: str, name: str) -> list[str]:
    """The name, then its normalised forms, most specific first."""
    bases = [name, name.rsplit("/", 1)[-1]]
    if family == "anthropic":
        # OpenRouter and others write Claude versions with dots: claude-3.5-sonnet.
        bases += [base.replace(".", "-") for base in bases]
    forms: list[str] = []
    for base in bases:
        form = base
        while form and form not in forms:
            forms.append(form)
            form = _SUFFIX.sub("", form, count=1)
    return forms


def _extends(name: str, key: str) -> bool:
    """Whether `name` is `key` plus a suffix that names a version of it, not another model."""
    if len(name) <= len(key) + 1 or not name.startswith(key) or name[len(key)] not in _SEPARATORS:
        return False
    rest = name[len(key) + 1 :]
    if rest[0].isdigit():
        return False
    first = re.split(r"[-._:@/]", rest, maxsplit=1)[0]
    return first not in _VARIANTS
