"""Virtual keys on `/v1/messages`, as on chat: presented as ``x-api-key`` (the Anthropic SDK's
way) or as a bearer token (Claude Code's ``ANTHROPIC_AUTH_TOKEN``), limited to their models and
rates, and refused in Anthropic's error shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import pytest

from key_harness import keyed_gateway

ASK: Any = {"max_tokens": 16, "messages": [{"role": "user", "content": "Hello"}]}


async def test_virtual_keys_are_served_and_refused_in_anthropics_shape(tmp_path: Path) -> None:
    async with keyed_gateway(f"sqlite:///{tmp_path / 'store.db'}") as (gateway, admin):
        limited = (await admin.post("/key/generate", {"models": ["other"]}))["key"]
        counted = (await admin.post("/key/generate", {"rpm_limit": 1}))["key"]
        options: Any = {"base_url": gateway.url, "max_retries": 0, "timeout": 10.0}
        async with anthropic.AsyncAnthropic(api_key=counted, **options) as client:
            served = await client.messages.with_raw_response.create(model="chat", **ASK)
            assert served.headers["x-ratelimit-remaining-requests"] == "0"
            with pytest.raises(anthropic.RateLimitError) as limit:
                await client.messages.create(model="chat", **ASK)
        async with anthropic.AsyncAnthropic(auth_token=limited, **options) as client:
            other = await client.messages.create(model="other", **ASK)
            with pytest.raises(anthropic.APIStatusError) as refused:
                await client.messages.create(model="chat", **ASK)
    assert (await served.parse()).type == "message" and other.type == "message"
    body = limit.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert int(limit.value.response.headers["retry-after"]) >= 1
    # LiteLLM's status and words for a key used outside its models, which its clients expect.
    assert refused.value.status_code == 401
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["error"]["type"] == "authentication_error"
    assert "can only access models=['other']" in refused.value.body["error"]["message"]
    assert limited not in refused.value.response.text
