"""Cheap prompt-size estimates for routing decisions.

Routing needs a size, not an exact count: the context-window filter, cost-based picking and the
TPM limit all work with an estimate of about four characters per token. Tokenizers differ per
provider and cost milliseconds; this costs microseconds and errs on the large side for code and
non-Latin text only mildly.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4
#: Tokens of framing OpenAI-style chat formats add per message.
TOKENS_PER_MESSAGE = 4
#: A low-detail image as OpenAI counts it; routing needs a floor, not the exact tile count.
TOKENS_PER_IMAGE = 85


def estimate_prompt_tokens(operation: str, body: dict[str, Any]) -> int:
    """Estimated prompt tokens of an OpenAI-shaped body."""
    if operation == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list):
            return 0
        total = 0
        for message in messages:
            total += TOKENS_PER_MESSAGE
            if isinstance(message, dict):
                total += _content_tokens(message.get("content"))
                calls = message.get("tool_calls")
                if calls:
                    total += _text_tokens(str(calls))
        tools = body.get("tools")
        if tools:
            total += _text_tokens(str(tools))
        return total
    key = "prompt" if operation == "completion" else "input"
    return _content_tokens(body.get(key))


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return _text_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, str):
                total += _text_tokens(part)
            elif isinstance(part, dict):
                if part.get("type") in ("image_url", "image", "input_image"):
                    total += TOKENS_PER_IMAGE
                else:
                    total += _text_tokens(part.get("text", ""))
            elif isinstance(part, int):
                total += 1
            elif isinstance(part, list):
                total += len(part)
        return total
    return 0


def _text_tokens(text: Any) -> int:
    if not isinstance(text, str):
        return 0
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
