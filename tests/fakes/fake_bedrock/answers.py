"""What the fake answers, decided from a native Bedrock request before a byte is sent.

The conventions of every turnout fake: a text answer is "Fake answer to: <the last user text>"
(quoted like `fakes.fake_openai.answers.quote`), one token per word, cut at
``inferenceConfig.maxTokens``; a request with ``toolConfig`` whose last turn is the user's own
(not tool results) gets a call of the chosen (else the first) tool, with placeholder arguments
for the schema's required properties (a forced tool whose schema requires nothing, as for JSON
mode, gets the answer's text as ``{"answer": ...}``). Usage counts are positive and
consistent. Requests Bedrock would refuse are refused with `BedrockError` (a 400
``ValidationException``).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

import msgspec

from fakes.fake_bedrock.faults import GUARDRAIL_MESSAGE
from fakes.fake_openai.answers import embedding as unit_vector
from fakes.fake_openai.answers import quote

#: Characters of tool-call input per streamed fragment.
_INPUT_FRAGMENT = 4
_IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")


class BedrockError(Exception):
    """An error answer decided while handling a request: status, exception name, message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def invalid(message: str) -> BedrockError:
    return BedrockError(400, "ValidationException", message)


def malformed(detail: str) -> BedrockError:
    """InvokeModel's refusal of a body that does not fit the model's schema."""
    return invalid(f"Malformed input request: {detail}, please reformat your input and try again.")


_START = (
    "A conversation must start with a user message. Try again with a conversation that starts "
    "with a user message."
)
_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. Make sure the conversation "
    "alternates between user and assistant roles and try again."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """One Converse answer: text tokens or a tool call, with its stop reason and usage."""

    tokens: tuple[str, ...]
    #: The called tool: (toolUseId, name, input as JSON text).
    tool: tuple[str, str, str] | None
    stop_reason: str
    input_tokens: int

    @property
    def pieces(self) -> tuple[str, ...]:
        if self.tool is None:
            return self.tokens
        text = self.tool[2]
        return tuple(text[i : i + _INPUT_FRAGMENT] for i in range(0, len(text), _INPUT_FRAGMENT))

    def usage(self) -> dict[str, int]:
        output = len(self.pieces)
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": output,
            "totalTokens": self.input_tokens + output,
        }

    def content(self) -> list[dict[str, Any]]:
        if self.tool is None:
            return [{"text": "".join(self.tokens)}]
        tool_id, name, arguments = self.tool
        value = msgspec.json.decode(arguments)
        return [{"toolUse": {"toolUseId": tool_id, "name": name, "input": value}}]

    def body(self, latency_ms: int) -> dict[str, Any]:
        return {
            "output": {"message": {"role": "assistant", "content": self.content()}},
            "stopReason": self.stop_reason,
            "usage": self.usage(),
            "metrics": {"latencyMs": latency_ms},
        }

    def events(
        self, latency_ms: int
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, dict[str, Any]]]]:
        """The stream's events as (name, payload): the content ones, then the closing ones."""
        content: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
        if self.tool is not None:
            start = {"toolUse": {"toolUseId": self.tool[0], "name": self.tool[1]}}
            content.append(("contentBlockStart", {"contentBlockIndex": 0, "start": start}))
        for piece in self.pieces:
            delta = {"text": piece} if self.tool is None else {"toolUse": {"input": piece}}
            content.append(("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta}))
        content.append(("contentBlockStop", {"contentBlockIndex": 0}))
        closing: list[tuple[str, dict[str, Any]]] = [
            ("messageStop", {"stopReason": self.stop_reason}),
            ("metadata", {"usage": self.usage(), "metrics": {"latencyMs": latency_ms}}),
        ]
        # Bedrock pads its payloads with a random "p" field so their sizes leak nothing.
        padded = [(name, {**payload, "p": _padding()}) for name, payload in content + closing]
        return padded[: len(content)], padded[len(content) :]


def converse_answer(body: Any, reply: str | None, *, guardrail: bool = False) -> Answer:
    """The answer to a Converse request, after checking it as Bedrock would."""
    if not isinstance(body, dict):
        raise invalid("Malformed input request, please reformat your input and try again.")
    messages = check_messages(
        body.get("messages"), has_tools=isinstance(body.get("toolConfig"), dict)
    )
    check_inference(body.get("inferenceConfig"))
    prompt = input_tokens(body)
    if guardrail:
        tokens = tuple(re.findall(r"\s*\S+", GUARDRAIL_MESSAGE))
        return Answer(
            tokens=tokens, tool=None, stop_reason="guardrail_intervened", input_tokens=prompt
        )
    tool = tool_call(body.get("toolConfig"), messages)
    text = reply if reply is not None else f"Fake answer to: {quote(last_user_text(messages))}"
    tokens = tuple(re.findall(r"\s*\S+", text))
    stop = "end_turn" if tool is None else "tool_use"
    cap = (body.get("inferenceConfig") or {}).get("maxTokens")
    if tool is None and isinstance(cap, int) and cap < len(tokens):
        tokens, stop = tokens[:cap], "max_tokens"
    return Answer(tokens=tokens, tool=tool, stop_reason=stop, input_tokens=prompt)


def check_messages(messages: Any, *, has_tools: bool) -> list[dict[str, Any]]:
    """The conversation, once it passed the checks Bedrock makes."""
    if not isinstance(messages, list) or not messages:
        raise invalid(_START)
    expected = "user"
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role != expected:
            raise invalid(_START if index == 0 else _ALTERNATE)
        expected = "assistant" if role == "user" else "user"
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise invalid(
                f"The content field in the Message object at messages.{index} is empty. "
                "Add a ContentBlock object to the content field and try again."
            )
        for number, block in enumerate(content):
            _check_block(block, f"messages.{index}.content.{number}", has_tools)
    return messages


def _check_block(block: Any, where: str, has_tools: bool) -> None:
    if not isinstance(block, dict) or len(block) != 1:
        raise invalid(f"The ContentBlock object at {where} must set exactly one field.")
    if ("toolUse" in block or "toolResult" in block) and not has_tools:
        raise invalid(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    if "text" in block and (not isinstance(block["text"], str) or not block["text"].strip()):
        raise invalid(
            f"The text field in the ContentBlock object at {where} is blank. "
            "Add text to the text field, and try again."
        )
    image = block.get("image")
    if image is not None:
        source = image.get("source") if isinstance(image, dict) else None
        data = source.get("bytes") if isinstance(source, dict) else None
        if image.get("format") not in _IMAGE_FORMATS or not isinstance(data, str):
            raise invalid(f"The image at {where} is not a supported image.")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(f"The image bytes at {where} are not valid base64.") from None


def check_inference(config: Any) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise invalid("Malformed input request: inferenceConfig must be an object.")
    for name in ("temperature", "topP"):
        value = config.get(name)
        if value is not None and not 0 <= value <= 1:
            raise invalid(
                f"1 validation error detected: Value '{value}' at 'inferenceConfig.{name}' failed "
                "to satisfy constraint: Member must have value less than or equal to 1"
            )


def input_tokens(body: dict[str, Any]) -> int:
    """A positive estimate: about four characters per token, four more per turn."""
    texts = [block.get("text", "") for block in body.get("system") or [] if isinstance(block, dict)]
    total = 0
    for message in body.get("messages") or []:
        total += 4
        for block in message.get("content") or []:
            if isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif "image" in block:
                total += 85
            elif "toolResult" in block:
                texts.extend(
                    str(part.get("text", "")) for part in block["toolResult"].get("content") or []
                )
    return max(1, total + sum(len(text) // 4 + 1 for text in texts))


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user turn that holds text (tool results are not the user's words)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        texts = [
            block["text"] for block in message["content"] if isinstance(block.get("text"), str)
        ]
        if texts:
            return " ".join(texts)
    return ""


def tool_call(config: Any, messages: list[dict[str, Any]]) -> tuple[str, str, str] | None:
    """The call to make: of the chosen (else the first) tool, when the user spoke last."""
    tools = [
        tool.get("toolSpec") for tool in (config or {}).get("tools") or [] if isinstance(tool, dict)
    ]
    specs = [spec for spec in tools if isinstance(spec, dict)]
    last = messages[-1]
    if not specs or last.get("role") != "user" or any("toolResult" in b for b in last["content"]):
        return None
    chosen = ((config.get("toolChoice") or {}).get("tool") or {}).get("name")
    spec = next((spec for spec in specs if spec.get("name") == chosen), specs[0])
    schema = (spec.get("inputSchema") or {}).get("json") or {}
    properties = schema.get("properties") or {}
    arguments = {name: _placeholder(properties.get(name)) for name in schema.get("required") or ()}
    if not arguments and chosen is not None:
        arguments = {"answer": f"Fake answer to: {quote(last_user_text(messages))}"}
    tool_id = "tooluse_" + "".join(
        secrets.choice(string.ascii_letters + string.digits) for _ in range(22)
    )
    return tool_id, str(spec.get("name")), msgspec.json.encode(arguments).decode()


def _placeholder(schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    defaults = {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
    return defaults.get(kind, "fake") if isinstance(kind, str) else "fake"


def _padding() -> str:
    return string.ascii_letters[: secrets.randbelow(20) + 1]


def titan_embedding(body: Any, default_size: int) -> dict[str, Any]:
    """Titan Text Embeddings: one ``inputText`` in, one vector out."""
    if not isinstance(body, dict) or not isinstance(body.get("inputText"), str):
        raise malformed("#: required key [inputText] not found")
    extra = set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}
    if extra:
        raise malformed(f"#: extraneous key [{sorted(extra)[0]}] is not permitted")
    size = body.get("dimensions", default_size)
    if not isinstance(size, int) or size < 1:
        raise malformed("#/dimensions: expected type: Integer")
    text = body["inputText"]
    vector = unit_vector(text, size)
    return {
        "embedding": vector,
        "inputTextTokenCount": len(text) // 4 + 1,
        "embeddingsByType": {"float": vector},
    }


def cohere_embedding(body: Any, size: int) -> tuple[dict[str, Any], int]:
    """Cohere Embed: up to 96 ``texts`` in, one vector each out; and the input token count."""
    texts = body.get("texts") if isinstance(body, dict) else None
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise malformed("#: required key [texts] not found")
    if "input_type" not in body:
        raise malformed("#: required key [input_type] not found")
    if len(texts) > 96:
        raise invalid(
            "Malformed input request: #/texts: expected maximum item count: 96, found: "
            + str(len(texts))
        )
    answer = {
        "id": secrets.token_hex(16),
        "embeddings": [unit_vector(text, size) for text in texts],
        "response_type": "embeddings_floats",
        "texts": texts,
    }
    return answer, sum(len(text) // 4 + 1 for text in texts)
