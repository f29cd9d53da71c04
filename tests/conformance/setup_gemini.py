"""Google Gemini (the Generative Language API), against `FakeGemini`."""

from __future__ import annotations

from typing import Any

from conformance_kit import Failure, ProviderSetup

from fakes.fake_gemini import FakeGemini, Fault
from turnout import Deployment, Secret

KEY = "gemini-fake-key"
_FAULTS: dict[Failure, Fault] = {
    "rate_limited": Fault.rate_limited(retry_delay=3),
    "server_error": Fault.server_error(),
    "overloaded": Fault.unavailable(),
    "authentication": Fault.invalid_key(),
    "context_window": Fault.context_window(),
    "content_policy": Fault.blocked("SAFETY"),
    "bad_request": Fault.bad_request(),
}


def _deployment(fake: FakeGemini, group: str, model: str) -> Deployment:
    return Deployment(
        model_name=group,
        provider="gemini",
        model=model,
        id=f"gemini-{group}",
        base_url=fake.url,
        api_key=Secret(KEY),
    )


def _last_body(fake: FakeGemini) -> dict[str, Any]:
    bodies = fake.generation_bodies()
    assert bodies, "the fake received no generation request"
    return bodies[-1]


def _system(body: dict[str, Any]) -> str | None:
    system = body.get("systemInstruction")
    if system is None:
        return None
    return "".join(part.get("text", "") for part in system["parts"])


def _roles(body: dict[str, Any]) -> list[str]:
    names = {"user": "user", "model": "assistant"}
    return [names[content["role"]] for content in body["contents"]]


def _images(body: dict[str, Any]) -> int:
    parts = body["contents"][-1]["parts"]
    return sum(1 for part in parts if "inlineData" in part or "fileData" in part)


def _tool_names(body: dict[str, Any]) -> list[str]:
    return [
        declaration["name"]
        for tool in body.get("tools") or []
        for declaration in tool.get("functionDeclarations") or []
    ]


def _tool_results(body: dict[str, Any]) -> list[str]:
    return [
        str(part["functionResponse"]["response"]["content"])
        for content in body["contents"]
        for part in content["parts"]
        if "functionResponse" in part
    ]


SETUP = ProviderSetup(
    name="gemini",
    start=lambda: FakeGemini(api_key=KEY, models=("gemini-2.0-flash", "text-embedding-004")),
    chat=lambda fake, group: _deployment(fake, group, "gemini-2.0-flash"),
    embedding=lambda fake, group: _deployment(fake, group, "text-embedding-004"),
    last_body=_last_body,
    system_prompt=_system,
    roles=_roles,
    images=_images,
    tool_names=_tool_names,
    tool_results=_tool_results,
    fail_next=lambda fake, failure: fake.enqueue(_FAULTS[failure]),
)
