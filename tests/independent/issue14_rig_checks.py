"""What the checks of issue 14 share: the requests they make (tools, schemas in each API's
shape), what the fakes answer, and how an answer or a stream is judged: the Messages API's
event order, how a broken stream ended, a JSON answer against its schema."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
from issue14_rig import MASTER, Event, Fake, Served, model_entry

from fakes.fake_anthropic import Fault as AnthropicFault
from fakes.fake_openai import FakeOpenAI
from fakes.fake_openai import Fault as OpenAIFault

GROUPS = ("gpt", "claude")
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
WEATHER_ANTHROPIC: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": WEATHER["parameters"],
}
PERSON: Any = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
#: The Responses API's streamed events in their documented order for one text answer.
RESPONSE_TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def expected_text(question: str) -> str:
    return f"Fake answer to: {question}"


def upstream_text(body: dict[str, Any]) -> str:
    """Everything an upstream request carries, as text, for "did it arrive" checks."""
    return json.dumps(body)


def assert_message_event_order(events: list[Event]) -> None:
    """message_start, then content blocks (start, deltas, stop) each with its index, then
    message_delta and message_stop; ping anywhere; each event's name is its data's type."""
    names = [event.name for event in events if event.name != "ping"]
    for event in events:
        assert isinstance(event.data, dict) and event.data.get("type") == event.name, event
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"], names
    blocks = names[1:-2]
    index, at = 0, 0
    while at < len(blocks):
        assert blocks[at] == "content_block_start", names
        end = blocks.index("content_block_stop", at)
        assert set(blocks[at + 1 : end]) <= {"content_block_delta"}, names
        at = end + 1
        index += 1
    assert index >= 1, f"no content block: {names}"
    indexes = [e.data["index"] for e in events if e.name == "content_block_start"]
    assert indexes == list(range(len(indexes))), indexes


def break_group(served: Served, group: str, fault: str, *, always: bool = False) -> Fake:
    """Tell the fake of `group` to commit `fault` ("status": a 500; "cut" or "error_event"
    mid-stream) once, or on every request; the fake."""
    fake = served.fakes.by_group[group]
    kind: Any = fault  # one of the kinds both fakes know, checked by their constructors
    made: Any
    if isinstance(fake, FakeOpenAI):
        made = (
            OpenAIFault.server_error() if fault == "status" else OpenAIFault(kind, after_chunks=4)
        )
    elif fault == "status":
        made = AnthropicFault.http_error(500, "api_error", "Internal server error")
    else:
        made = AnthropicFault(kind, after_chunks=6)
    if always:
        fake.set_default(made)
    else:
        fake.enqueue(made)
    return fake


def stream_outcome(route: str, events: list[Event]) -> tuple[str, str]:
    """(how the stream ended: "completed", "error" or "truncated", the text it carried)."""
    if route == "responses":
        text = "".join(e.data["delta"] for e in events if e.name == "response.output_text.delta")
        last = events[-1].name if events else None
        if last == "response.completed":
            return "completed", text
        if last in ("response.failed", "response.incomplete", "error"):
            return "error", text
        return "truncated", text
    text = "".join(
        e.data["delta"].get("text", "") for e in events if e.name == "content_block_delta"
    )
    names = [event.name for event in events if event.name != "ping"]
    if names[-1:] == ["message_stop"]:
        return "completed", text
    if names[-1:] == ["error"]:
        return "error", text
    return "truncated", text


DEMO_MODEL = "gpt-4o-mini"
#: A one-pixel PNG.
PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
    "DwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def demo_openai(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="anything", timeout=20.0)


def demo_anthropic(url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key="anything", timeout=20.0)


def assert_person(text: str) -> None:
    person = json.loads(text)
    assert isinstance(person, dict), person
    assert isinstance(person.get("name"), str) and isinstance(person.get("age"), int), person
    assert set(person) == {"name", "age"}, f"additionalProperties is false: {person}"


def with_unsupported(fake_url: str) -> dict[str, Any]:
    return {
        "model_list": [
            model_entry("chat", "openai", fake_url),
            {
                "model_name": "llama",
                "litellm_params": {"model": "sagemaker/jumpstart-dft-meta-textgeneration-llama-2"},
            },
        ],
        "litellm_settings": {"drop_params": True},
    }


def stream_request(
    served: Served, route: str, model: str, question: str
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(URL, headers, body) of a streamed request of `question` on `route`, raw, as an SDK
    would send it."""
    if route == "responses":
        headers = {"Authorization": f"Bearer {MASTER}"}
        return (
            f"{served.url}/v1/responses",
            headers,
            {"model": model, "input": question, "stream": True},
        )
    headers = {"x-api-key": MASTER, "anthropic-version": "2023-06-01"}
    body = {
        "model": model,
        "max_tokens": 256,
        "stream": True,
        "messages": [{"role": "user", "content": question}],
    }
    return f"{served.url}/v1/messages", headers, body


def text_of(message: Any) -> str:
    """The text of a Message's first content block (the SDK types it as any block)."""
    text: str = message.content[0].text
    return text


#: A config in the shape LiteLLM's proxy documentation shows: several providers, secrets from the
#: environment, per-deployment limits, LiteLLM settings turnout maps and ones it ignores.
LITELLM_DOCS_CONFIG: Any = {
    "model_list": [
        {
            "model_name": "gpt-4o",
            "litellm_params": {
                "model": "azure/my-gpt4o-deployment",
                "api_base": "os.environ/AZURE_API_BASE",
                "api_key": "os.environ/AZURE_API_KEY",
                "api_version": "2024-08-01-preview",
                "rpm": 60,
                "tpm": 100000,
                "timeout": 30,
                "stream_timeout": 10,
            },
            "model_info": {"id": "azure-east"},
        },
        {
            "model_name": "claude-3-5-sonnet",
            "litellm_params": {
                "model": "anthropic/claude-3-5-sonnet-20240620",
                "api_key": "os.environ/ANTHROPIC_API_KEY",
            },
        },
        {
            "model_name": "llama3",
            "litellm_params": {"model": "ollama/llama3", "api_base": "http://127.0.0.1:9"},
        },
        {
            "model_name": "groq-llama",
            "litellm_params": {
                "model": "groq/llama3-8b-8192",
                "api_key": "os.environ/GROQ_API_KEY",
            },
        },
    ],
    "litellm_settings": {
        "drop_params": True,
        "num_retries": 3,
        "set_verbose": False,
        "success_callback": ["langfuse"],
    },
    "router_settings": {
        "routing_strategy": "usage-based-routing-v2",
        "allowed_fails": 3,
        "cooldown_time": 30,
        "fallbacks": [{"gpt-4o": ["claude-3-5-sonnet"]}],
    },
    "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
}
LITELLM_DOCS_ENV = {
    "AZURE_API_BASE": "http://127.0.0.1:9",
    "AZURE_API_KEY": "azure-key-issue14",
    "ANTHROPIC_API_KEY": "sk-ant-issue14",
    "GROQ_API_KEY": "gsk-issue14",
    "LITELLM_MASTER_KEY": "sk-master-issue14-docs",
}
