"""The configuration most users run: a LiteLLM `config.yaml` with one deployment per model plus
`fallbacks`, everything else at turnout's defaults. Resilience tests run in this shape too."""

from __future__ import annotations

from typing import Any


def one_per_model(
    primary_url: str,
    fallback_url: str,
    *,
    names: tuple[str, str] = ("chat", "spare"),
    key: str = "sk-fake",
    ids: bool = False,
    **router_settings: Any,
) -> dict[str, Any]:
    """Two models of one deployment each, the first falling back to the second; extra keyword
    arguments go to ``router_settings`` (``num_retries=2``, ``timeout=30``...). With `ids`, each
    deployment's id is its model name (LiteLLM's ``model_info.id``)."""
    primary, fallback = names
    model_list = []
    for name, url in ((primary, primary_url), (fallback, fallback_url)):
        entry: dict[str, Any] = {
            "model_name": name,
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": url, "api_key": key},
        }
        if ids:
            entry["model_info"] = {"id": name}
        model_list.append(entry)
    return {
        "model_list": model_list,
        "router_settings": {"fallbacks": [{primary: [fallback]}], **router_settings},
    }


def simulated_one_per_model(**router_settings: Any) -> dict[str, Any]:
    """The same shape on the harness's simulated provider (``sim/...`` models): `primary`
    falls back to `backup`, each deployment's id its model name."""
    return {
        "model_list": [
            {
                "model_name": name,
                "litellm_params": {"model": f"sim/{name}"},
                "model_info": {"id": name},
            }
            for name in ("primary", "backup")
        ],
        "router_settings": {"fallbacks": [{"primary": ["backup"]}], **router_settings},
    }
