"""OpenAI's Responses API passed through as it came, for callers that speak it themselves.

A request to the gateway's ``/v1/responses`` route is routed as chat (its translation is the
router's `Request.body`) and carries a Responses body along, as a `NativeResponsesRequest`.
When the deployment picked takes Responses bodies natively (`speaks_responses`), the adapter
POSTs that body to the deployment's ``/responses`` endpoint, with the deployment's model and
``extra_body``, instead of the chat translation: every field OpenAI knows (reasoning settings,
``include``, hosted-tool options the translation would refuse...) reaches it as written.

The body carried is not quite the caller's: the gateway keeps conversations itself, so the
carried body's ``input`` is the whole conversation so far and it has no
``previous_response_id``, and it says ``store: false``. Any deployment, native or not, can then
serve any turn, and nothing is left stored upstream under an id the gateway never issued.

The answer keeps both shapes, as the Messages API's native mode does
(`turnout.providers.anthropic.native`): a whole answer's `ProviderResponse.raw` is the
upstream's `response` object, relayed, while its decoded body is its chat translation, from
which the router reads usage and finish reasons. Streams are translated event by event in
`turnout.providers.openai_responses_stream`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from turnout.config.providers import RESPONSES_PROVIDERS, OpenAISettings, settings_of
from turnout.config.router import Deployment
from turnout.errors import ServerError
from turnout.wire import Request, Usage

#: The providers whose deployments may take a Responses body natively (Azure's through its v1
#: API, ``{endpoint}/openai/v1/responses``, whatever the deployment's dated api-version).
PROVIDERS = frozenset(RESPONSES_PROVIDERS)
RESPONSES_PATH = "/responses"
#: Why a response stopped early (``incomplete_details.reason``), as a chat finish reason.
_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}
_DECODE = msgspec.json.Decoder(type=dict[str, Any]).decode


@dataclass(slots=True)
class NativeResponsesRequest(Request):
    """A chat request translated from a Responses request, carrying a Responses body along."""

    #: The Responses body a native deployment is sent (conversation expanded, not stored).
    native: dict[str, Any] = field(default_factory=dict)


def carrying(request: Request, native: dict[str, Any]) -> Request:
    """`request` as a `NativeResponsesRequest` carrying the Responses body `native`."""
    fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(Request) if f.init}
    return NativeResponsesRequest(**fields, native=native)


def speaks_responses(deployment: Deployment) -> bool:
    """Whether `deployment` is sent Responses bodies as they are: OpenAI's own API unless its
    deployment says otherwise, and an OpenAI or Azure deployment that says so
    (``native_responses``). Servers that copy OpenAI's chat API often lack ``/responses``,
    which is why a ``base_url`` of its own turns the default off."""
    if deployment.provider not in PROVIDERS:
        return False
    settings = deployment.settings
    if not isinstance(settings, OpenAISettings):
        return False
    if settings.native_responses is None:
        return deployment.provider == "openai" and deployment.base_url is None
    return settings.native_responses


def native_request(request: Request, deployment: Deployment) -> NativeResponsesRequest | None:
    """`request`, when it carries a Responses body and `deployment` is sent such bodies as
    they are; else None (the chat translation goes)."""
    if isinstance(request, NativeResponsesRequest) and speaks_responses(deployment):
        return request
    return None


def native_body(deployment: Deployment, request: NativeResponsesRequest) -> dict[str, Any]:
    """The body a native deployment is sent: the carried one with the deployment's model, its
    default parameters where the body sets none, and its ``extra_body`` over all."""
    settings = settings_of(deployment.settings, OpenAISettings)
    body = dict(request.native)
    for name, value in deployment.params.items():
        body.setdefault(name, value)
    body.update(settings.extra_body)
    body["model"] = deployment.model
    return body


def usage_of(value: Any) -> Usage | None:
    """A `response` object's ``usage`` (input and output tokens) as a `Usage`."""
    if not isinstance(value, dict):
        return None
    details = value.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        _count(value.get("input_tokens")), _count(value.get("output_tokens")), _count(cached)
    )


def finish_reason(response: Mapping[str, Any]) -> str:
    """What a finished `response` object says, as a chat finish reason."""
    details = response.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    if response.get("status") == "incomplete":
        return _FINISH.get(str(reason), "length")
    output = response.get("output")
    calls = isinstance(output, list) and any(
        isinstance(item, dict) and item.get("type") == "function_call" for item in output
    )
    return "tool_calls" if calls else "stop"


def chat_completion(provider: str, body: bytes) -> tuple[dict[str, Any], Usage]:
    """A whole `response` object as the ``chat.completion`` the router reads, and its usage;
    a body that is not one, or a response that failed, is a server error."""
    try:
        response = _DECODE(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ServerError(f"{provider}: sent an answer that is not JSON") from None
    if response.get("status") == "failed":
        error = response.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        raise ServerError(f"{provider}: {message or 'the response failed'}")
    output = response.get("output")
    message = assistant_message(output if isinstance(output, list) else [])
    usage = usage_of(response.get("usage")) or Usage()
    answer = {
        "id": str(response.get("id") or ""),
        "object": "chat.completion",
        "created": _count(response.get("created_at")),
        "model": str(response.get("model") or ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(response)}],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }
    return answer, usage


def assistant_message(output: list[Any]) -> dict[str, Any]:
    """A response's output items as one chat assistant message: its text (and refusal) and
    its function calls; reasoning and hosted tools' items have no chat counterpart."""
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    texts.append(str(part.get("text") or ""))
                elif isinstance(part, dict) and part.get("type") == "refusal":
                    refusals.append(str(part.get("refusal") or ""))
        elif item.get("type") == "function_call":
            function = {"name": str(item.get("name") or ""), "arguments": item.get("arguments")}
            calls.append({"id": item.get("call_id"), "type": "function", "function": function})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if refusals:
        message["refusal"] = "".join(refusals)
    if calls:
        message["tool_calls"] = calls
    return message


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
