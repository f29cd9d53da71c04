"""The OpenAI-compatible family, against `FakeOpenAI`."""

from __future__ import annotations

from typing import Any

from conformance_kit import Failure, ProviderSetup

from fakes.fake_openai import FakeOpenAI, Fault
from turnout import Deployment, Secret

_FAULTS: dict[Failure, Fault] = {
    "rate_limited": Fault.rate_limited(retry_after=3),
    "server_error": Fault.server_error(),
    "overloaded": Fault.unavailable(),
    "authentication": Fault.unauthorized(),
    "context_window": Fault.context_length_exceeded(),
    "content_policy": Fault.content_policy(),
    "bad_request": Fault.http_error(
        400, "Invalid value for 'temperature'", "invalid_request_error", param="temperature"
    ),
}


def _deployment(fake: FakeOpenAI, group: str, model: str) -> Deployment:
    return Deployment(
        model_name=group,
        provider="openai-compatible",
        model=model,
        id=f"openai-{group}",
        base_url=fake.url,
        api_key=Secret("sk-fake"),
    )


def _last_body(fake: FakeOpenAI) -> dict[str, Any]:
    bodies: list[dict[str, Any]] = [
        r.json for r in fake.requests if r.path.endswith("/completions") and r.json
    ]
    assert bodies, "the fake received no generation request"
    return bodies[-1]


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if isinstance(m, dict)]


def _system(body: dict[str, Any]) -> str | None:
    found = [m["content"] for m in _messages(body) if m.get("role") in ("system", "developer")]
    return found[0] if found else None


def _images(body: dict[str, Any]) -> int:
    last = _messages(body)[-1].get("content")
    return sum(1 for p in last if p.get("type") == "image_url") if isinstance(last, list) else 0


#: How to read an OpenAI-format body, for every setup whose provider speaks that format.
READERS: dict[str, Any] = {
    "last_body": _last_body,
    "system_prompt": _system,
    "roles": lambda body: [
        m["role"] for m in _messages(body) if m.get("role") not in ("system", "developer")
    ],
    "images": _images,
    "tool_names": lambda body: [t["function"]["name"] for t in body.get("tools") or []],
    "tool_results": lambda body: [
        str(m.get("content")) for m in _messages(body) if m.get("role") == "tool"
    ],
}


SETUP = ProviderSetup(
    name="openai",
    start=lambda: FakeOpenAI(models=None),
    chat=lambda fake, group: _deployment(fake, group, "gpt-4o-mini"),
    embedding=lambda fake, group: _deployment(fake, group, "text-embedding-3-small"),
    fail_next=lambda fake, failure: fake.enqueue(_FAULTS[failure]),
    **READERS,
)
