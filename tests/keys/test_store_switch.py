"""When the gateway opens its key store: what a demanding user would expect from each config."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.config.load import parse_config
from turnout.config.store import store_enabled
from turnout.demo import demo_config

MODELS: Any = {"model_list": [{"model_name": "chat", "provider": "openai", "model": "gpt-4o"}]}
LITELLM: Any = {
    "model_list": [{"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o"}}]
}


def _on(data: Any, environ: dict[str, str] | None = None) -> bool:
    config = parse_config(data, environ=environ or {})
    return store_enabled(config.store, master_key_set=config.server.master_key is not None)


@pytest.mark.parametrize(
    ("data", "on"),
    [
        (MODELS, False),
        ({**MODELS, "server": {"master_key": "sk-admin"}}, True),
        ({**MODELS, "store": {"url": "sqlite:///keys.db"}}, True),
        ({**MODELS, "server": {"master_key": "sk-a"}, "store": {"enabled": False}}, False),
        ({**MODELS, "store": {"url": "sqlite:///keys.db", "enabled": False}}, False),
        ({**LITELLM, "general_settings": {"master_key": "sk-admin"}}, True),
        ({**LITELLM, "general_settings": {"database_url": "postgresql://db/litellm"}}, True),
        ({**LITELLM, "general_settings": {"database_url": "os.environ/DATABASE_URL"}}, False),
        (LITELLM, False),
    ],
)
def test_the_store_is_on_with_a_master_key_or_a_store_and_off_otherwise(
    data: Any, on: bool
) -> None:
    assert _on(data) is on


def test_the_demo_never_opens_a_store() -> None:
    config = demo_config()
    assert config.server.master_key is None
    assert not store_enabled(config.store, master_key_set=False)
