"""Azure OpenAI (the dated deployments API), against `FakeAzure`."""

from __future__ import annotations

from typing import Any

from conformance_kit import Failure, ProviderSetup

from turnout import Deployment, Secret
from turnout.testing import fake_azure
from turnout.testing.fake_azure import FakeAzure
from turnout.testing.fake_openai import Fault

_FAULTS: dict[Failure, Fault] = {
    "rate_limited": fake_azure.rate_limited(retry_after=3),
    "server_error": Fault.server_error(),
    "overloaded": fake_azure.service_unavailable(),
    "authentication": fake_azure.access_denied(),
    "context_window": Fault.context_length_exceeded(),
    "content_policy": fake_azure.content_filter(),
    "bad_request": Fault.http_error(
        400, "Invalid value for 'temperature'", "invalid_request_error", param="temperature"
    ),
}


def _deployment(fake: FakeAzure, group: str, model: str) -> Deployment:
    assert fake.api_key is not None
    return Deployment(
        model_name=group,
        provider="azure",
        model=model,
        id=f"azure-{group}",
        base_url=fake.url,
        api_key=Secret(fake.api_key),
        api_version="2024-10-21",
    )


def _last_body(fake: FakeAzure) -> dict[str, Any]:
    bodies = [r.json for r in fake.requests if r.path.endswith("/completions") and r.json]
    assert bodies, "the fake received no generation request"
    body: dict[str, Any] = bodies[-1]
    return body


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if isinstance(m, dict)]


def _system(body: dict[str, Any]) -> str | None:
    found = [m["content"] for m in _messages(body) if m.get("role") in ("system", "developer")]
    return found[0] if found else None


def _images(body: dict[str, Any]) -> int:
    last = _messages(body)[-1].get("content")
    return sum(1 for p in last if p.get("type") == "image_url") if isinstance(last, list) else 0


SETUP = ProviderSetup(
    name="azure",
    start=lambda: FakeAzure(deployments=("gpt-4o-mini", "text-embedding-3-small")),
    chat=lambda fake, group: _deployment(fake, group, "gpt-4o-mini"),
    embedding=lambda fake, group: _deployment(fake, group, "text-embedding-3-small"),
    last_body=_last_body,
    system_prompt=_system,
    roles=lambda body: [
        m["role"] for m in _messages(body) if m.get("role") not in ("system", "developer")
    ],
    images=_images,
    tool_names=lambda body: [t["function"]["name"] for t in body.get("tools") or []],
    tool_results=lambda body: [
        str(m.get("content")) for m in _messages(body) if m.get("role") == "tool"
    ],
    fail_next=lambda fake, failure: fake.enqueue(_FAULTS[failure]),
)
