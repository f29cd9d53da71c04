"""Anthropic's Messages API, against `FakeAnthropic`.

Anthropic has no content-policy error status. Its documented safety behaviour is a refusal: a
200 answer with ``stop_reason: "refusal"`` (Claude 4 streaming classifiers). A refusal with no
content at all is what the "content_policy" failure uses; the adapter reports it as a 400
``content_policy_violation``, since nothing was answered and a fallback may help.
"""

from __future__ import annotations

from typing import Any

from conformance_kit import Failure, ProviderSetup

from fakes.fake_anthropic import FakeAnthropic, Fault
from turnout import Deployment, Secret

_FAULTS: dict[Failure, Fault] = {
    "rate_limited": Fault.rate_limited(retry_after=3),
    "server_error": Fault.server_error(),
    "overloaded": Fault.overloaded(),
    "authentication": Fault.unauthorized(),
    "context_window": Fault.context_length_exceeded(),
    "content_policy": Fault.refused(),
    "bad_request": Fault.http_error(400, "invalid_request_error", "temperature: range: 0..1"),
}


def _deployment(fake: FakeAnthropic, group: str) -> Deployment:
    return Deployment(
        model_name=group,
        provider="anthropic",
        model="claude-sonnet-4-5",
        id=f"anthropic-{group}",
        base_url=fake.url,
        api_key=Secret("sk-ant-fake"),
    )


def _last_body(fake: FakeAnthropic) -> dict[str, Any]:
    bodies = [r.json for r in fake.requests if r.path == "/v1/messages" and r.json]
    assert bodies, "the fake received no Messages request"
    last: dict[str, Any] = bodies[-1]
    return last


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or () if isinstance(block, dict)]


def _text(content: Any) -> str:
    return "".join(b.get("text", "") for b in _blocks(content) if b.get("type") == "text")


def _system(body: dict[str, Any]) -> str | None:
    system = body.get("system")
    return None if system is None else _text(system)


def _tool_results(body: dict[str, Any]) -> list[str]:
    return [
        _text(block.get("content"))
        for message in body["messages"]
        for block in _blocks(message.get("content"))
        if block.get("type") == "tool_result"
    ]


SETUP = ProviderSetup(
    name="anthropic",
    start=lambda: FakeAnthropic(models=None),
    chat=_deployment,
    embedding=None,
    last_body=_last_body,
    system_prompt=_system,
    roles=lambda body: [message["role"] for message in body["messages"]],
    images=lambda body: sum(
        1 for b in _blocks(body["messages"][-1].get("content")) if b.get("type") == "image"
    ),
    tool_names=lambda body: [tool["name"] for tool in body.get("tools") or []],
    tool_results=_tool_results,
    fail_next=lambda fake, failure: fake.enqueue(_FAULTS[failure]),
)
