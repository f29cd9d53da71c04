"""`GET /v1/models/{id}` and the listing, through the official SDK: groups and aliases the
caller may see, a 404 in OpenAI's shape for everything else."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from gateway_harness import gateway_config, running_gateway, simulated
from key_harness import keyed_gateway


async def test_groups_and_aliases_are_listed_and_retrieved() -> None:
    config = gateway_config(
        simulated("a"),
        simulated("b", group="openai/gpt-4o"),
        aliases={"fast": "chat", "gpt": "openai/gpt-4o"},
    )
    async with running_gateway(config) as gw, gw.client() as client:
        listed = sorted(model.id for model in (await client.models.list()).data)
        assert listed == ["chat", "fast", "gpt", "openai/gpt-4o"]
        for name in listed:
            model = await client.models.retrieve(name)
            assert (model.id, model.object, model.owned_by) == (name, "model", "turnout")
        with pytest.raises(openai.NotFoundError) as caught:
            await client.models.retrieve("gpt-5")
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_found"
    assert "gpt-5" in error["message"] and "chat" not in error["message"]


async def test_a_key_sees_only_its_models(tmp_path: Path) -> None:
    async with keyed_gateway(f"sqlite:///{tmp_path / 'keys.db'}") as (gw, admin):
        made = await admin.post("/key/generate", {"models": ["gpt-4o"]})
        async with gw.client(api_key=made["key"]) as client:
            assert [m.id for m in (await client.models.list()).data] == ["gpt-4o"]
            assert (await client.models.retrieve("gpt-4o")).id == "gpt-4o"
            with pytest.raises(openai.NotFoundError):
                await client.models.retrieve("other")
        async with gw.client(api_key="sk-not-a-key") as client:
            with pytest.raises(openai.AuthenticationError):
                await client.models.retrieve("chat")
