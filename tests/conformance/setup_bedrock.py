"""Amazon Bedrock (Converse, ConverseStream, InvokeModel), against `FakeBedrock`.

Chat signs with SigV4 (keys in params, as the LiteLLM import stores them); embeddings use a
Bedrock API key. The embedding deployment is Cohere Embed: the suite embeds two inputs at once,
which Titan (one ``inputText`` per call) refuses; Titan's rule is unit-tested instead.
"""

from __future__ import annotations

from typing import Any

from conformance_kit import Failure, ProviderSetup

from fakes.fake_bedrock import FakeBedrock, Fault
from turnout import Deployment, Secret

_FAULTS: dict[Failure, Fault] = {
    "rate_limited": Fault.throttled(),
    "server_error": Fault.internal_error(),
    "overloaded": Fault.unavailable(),
    "authentication": Fault.unrecognized_client(),
    "context_window": Fault.input_too_long(),
    "content_policy": Fault.guardrail(),
    "bad_request": Fault.validation(
        "1 validation error detected: Value '1.5' at 'inferenceConfig.temperature' failed to "
        "satisfy constraint: Member must have value less than or equal to 1"
    ),
}


def _chat(fake: FakeBedrock, group: str) -> Deployment:
    assert fake.keys is not None
    return Deployment(
        model_name=group,
        provider="bedrock",
        # Converse, which the suite checks: a Claude model without the route prefix would take
        # a Messages request natively (tests/ingress/test_messages_bedrock_native.py).
        model="converse/anthropic.claude-3-5-sonnet-20240620-v1:0",
        id=f"bedrock-{group}",
        base_url=fake.url,
        params={
            "aws_region_name": fake.region,
            "aws_access_key_id": fake.keys.access_key,
            "aws_secret_access_key": Secret(fake.keys.secret_key),
        },
    )


def _embedding(fake: FakeBedrock, group: str) -> Deployment:
    assert fake.api_key is not None
    return Deployment(
        model_name=group,
        provider="bedrock",
        model="cohere.embed-english-v3",
        id=f"bedrock-{group}",
        base_url=fake.url,
        api_key=Secret(fake.api_key),
        params={"aws_region_name": fake.region},
    )


def _last_body(fake: FakeBedrock) -> dict[str, Any]:
    bodies = [
        r.json for r in fake.requests if r.action in ("converse", "converse-stream") and r.json
    ]
    assert bodies, "the fake received no Converse request"
    assert all(r.auth == "sigv4" for r in fake.requests if r.action != "invoke")
    body: dict[str, Any] = bodies[-1]
    return body


def _system(body: dict[str, Any]) -> str | None:
    texts = [block["text"] for block in body.get("system") or [] if "text" in block]
    return "\n".join(texts) if texts else None


def _blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [block for message in body["messages"] for block in message["content"]]


def _tool_results(body: dict[str, Any]) -> list[str]:
    return [
        "".join(part.get("text", "") for part in block["toolResult"]["content"])
        for block in _blocks(body)
        if "toolResult" in block
    ]


SETUP = ProviderSetup(
    name="bedrock",
    start=FakeBedrock,
    chat=_chat,
    embedding=_embedding,
    last_body=_last_body,
    system_prompt=_system,
    roles=lambda body: [message["role"] for message in body["messages"]],
    images=lambda body: sum(1 for block in body["messages"][-1]["content"] if "image" in block),
    tool_names=lambda body: [
        tool["toolSpec"]["name"] for tool in (body.get("toolConfig") or {}).get("tools", [])
    ],
    tool_results=_tool_results,
    fail_next=lambda fake, failure: fake.enqueue(_FAULTS[failure]),
    image_urls=False,
)
