"""Upstream error replies that carry a key where shortening a long message would cut it.

Long upstream text (an HTML error page, a long JSON message, an exception frame) is shortened
before it reaches a client. Were it shortened first and redacted after, a configured key that
straddles the cut would leave its first characters behind: the redactor knows only whole keys.
`straddling` lays text out so that a key begins at offset 480 and copies of it follow, one
after another, so that wherever the text is cut, a copy is cut in half. For each provider
family: a deployment on a `raw_upstream` holding `KEY` (no known key shape, so only the
configured-secret rule can catch it) and that family's reply shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from fakes.fake_bedrock import eventstream
from raw_upstream import RawReply
from turnout import Deployment, Secret

#: An Azure-style key (32 hex digits): of no shape the redactor knows.
KEY = "9f3c1a7be2d84c06a5f1e8b23d7c4e91"
#: Where the first copy of the key begins in the upstream's text.
OFFSET = 480
#: Copies of the key after the first, so that every cut up to about 900 characters falls
#: inside one.
COPIES = 20
MASK = "**********"
#: Characters of the key that, found together, show part of it got through.
PIECE = 6


def straddling(start: str = "", offset: int = OFFSET, key: str = KEY) -> str:
    """`start`, padded to `offset`, then `key` and its copies, then an ordinary ending."""
    padding = "y" * (offset - len(start))
    return start + padding + " ".join([key] * (1 + COPIES)) + " end of message"


def pieces_of_the_key(text: str, key: str = KEY) -> list[str]:
    """Every run of `PIECE` characters of `key` found in `text` (none: nothing leaked)."""
    runs = (key[start : start + PIECE] for start in range(len(key) - PIECE + 1))
    return [run for run in runs if run in text]


def _json(value: object) -> bytes:
    return msgspec.json.encode(value)


@dataclass(frozen=True)
class RawFamily:
    name: str
    deployment: Callable[[str], Deployment]
    #: A status error in the family's JSON shape whose message is `text`.
    json_error: Callable[[str], RawReply]


def _deployment(provider: str, model: str, url: str, api_version: str | None = None) -> Deployment:
    return Deployment(
        model_name="chat",
        provider=provider,
        model=model,
        id=f"{provider}-chat",
        base_url=url,
        api_key=Secret(KEY),
        api_version=api_version,
    )


def _bedrock(url: str) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="bedrock",
        model="anthropic.claude-3-5-sonnet-20240620-v1:0",
        id="bedrock-chat",
        base_url=url,
        params={
            "aws_region_name": "us-east-1",
            "aws_access_key_id": "AKIDRAWUPSTREAM",
            "aws_secret_access_key": KEY,
        },
    )


RAW_FAMILIES = [
    RawFamily(
        "openai-compatible",
        lambda url: _deployment("openai-compatible", "gpt-4o-mini", f"{url}/v1"),
        # A FastAPI-style body: OpenAI-compatible servers answer ``{"detail": ...}``.
        lambda text: RawReply(502, _json({"detail": text}), "application/json"),
    ),
    RawFamily(
        "azure",
        lambda url: _deployment("azure", "gpt-4o-mini", url, api_version="2024-10-21"),
        # A bare JSON string, as a gateway in front of Azure may answer.
        lambda text: RawReply(502, _json(text), "application/json"),
    ),
    RawFamily(
        "anthropic",
        lambda url: _deployment("anthropic", "claude-sonnet-4-5", url),
        lambda text: RawReply(
            502,
            _json({"type": "error", "error": {"type": "api_error", "message": text}}),
            "application/json",
        ),
    ),
    RawFamily(
        "gemini",
        lambda url: _deployment("gemini", "gemini-2.0-flash", url),
        lambda text: RawReply(
            502,
            _json({"error": {"code": 502, "message": text, "status": "UNAVAILABLE"}}),
            "application/json",
        ),
    ),
    RawFamily(
        "bedrock",
        _bedrock,
        lambda text: RawReply(
            502,
            _json({"message": text}),
            "application/json",
            {"x-amzn-ErrorType": "ServiceUnavailableException"},
        ),
    ),
]


def html_error(text: str) -> RawReply:
    """A proxy's HTML error page (not JSON at all) whose text is `text`."""
    return RawReply(502, f"{text}</pre></body></html>".encode())


def html_text() -> str:
    """The page of `html_error`, laid out so that the key begins at `OFFSET` of the body."""
    return straddling("<html><body><h1>502 Bad Gateway</h1><pre>")


_STREAM = "application/vnd.amazon.eventstream"


def bedrock_stream(payload: bytes, *, started: bool) -> RawReply:
    """A ConverseStream reply whose exception frame carries `payload` (text, not Bedrock's
    ``{"message"}``), first or after the answer has started."""
    frames = []
    if started:
        frames += [
            eventstream.event("messageStart", {"role": "assistant"}),
            eventstream.event(
                "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}
            ),
        ]
    headers = {
        ":exception-type": "serviceUnavailableException",
        ":content-type": "text/plain",
        ":message-type": "exception",
    }
    frames.append(eventstream.frame(headers, payload))
    return RawReply(200, b"".join(frames), _STREAM)
