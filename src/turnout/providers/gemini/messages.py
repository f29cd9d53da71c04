"""OpenAI chat messages into Gemini's ``systemInstruction`` and ``contents``.

Gemini's conversation is a list of ``{role: "user" | "model", parts: [...]}`` turns; system and
developer messages go to ``systemInstruction`` instead, wherever they stood. Consecutive turns of
one role are merged, as Gemini expects strictly alternating turns and wants all the results of
one round of function calls in a single turn. Tool results become ``functionResponse`` parts of a
user turn, named after the call they answer (Gemini matches results to calls by name, so the
name is looked up from the assistant message that made the call).

Images: ``data:`` URLs become ``inlineData``; http(s) and ``gs://`` URLs become ``fileData``,
which Gemini fetches itself (public and signed HTTPS URLs are accepted since January 2026).

Gemini 3 models sign their function calls (``thoughtSignature``) and reject a history whose calls
lost their signatures. OpenAI's wire format has no field for it, so `call_id` carries the
signature inside the tool-call id it makes up (Gemini has no call ids of its own), where every
client keeps it; Gemini's own OpenAI layer's ``extra_content.google.thought_signature`` is read
too.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import msgspec

from turnout.errors import InvalidRequestError

#: Separates the made-up part of a tool-call id from the signature it carries.
_SIGNATURE_MARK = "__"
#: ``input_audio`` formats and their MIME types.
_AUDIO = {"wav": "audio/wav", "mp3": "audio/mp3"}
#: The MIME type assumed for an image URL whose path names none.
_DEFAULT_IMAGE = "image/jpeg"


def call_id(seed: str, signature: str | None = None) -> str:
    """A stable tool-call id for a call Gemini made, carrying its thought signature if any.

    The signature is base64; it is stored URL-safe and unpadded so that the id stays within
    ``[A-Za-z0-9_-]``, the alphabet other providers demand of tool-call ids.
    """
    digest = hashlib.sha256(seed.encode()).hexdigest()[:24]
    if not signature:
        return f"call_{digest}"
    safe = signature.replace("+", "-").replace("/", "_").rstrip("=")
    return f"call_{digest}{_SIGNATURE_MARK}{safe}"


def signature_of(tool_call: Mapping[str, Any]) -> str | None:
    """The thought signature an OpenAI tool call carries (see `call_id`), if any."""
    extra = tool_call.get("extra_content")
    if isinstance(extra, Mapping):
        google = extra.get("google")
        if isinstance(google, Mapping) and isinstance(google.get("thought_signature"), str):
            return str(google["thought_signature"])
    identifier = tool_call.get("id")
    if not isinstance(identifier, str) or _SIGNATURE_MARK not in identifier:
        return None
    safe = identifier.split(_SIGNATURE_MARK, 1)[1]
    if not safe:
        return None
    padded = safe.replace("-", "+").replace("_", "/")
    return padded + "=" * (-len(padded) % 4)


def conversation(messages: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """``systemInstruction`` (or None) and ``contents`` for OpenAI's ``messages``."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("gemini: `messages` must be a non-empty list", param="messages")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise _invalid(f"messages[{index}] is not an object")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_parts(message.get("content"), index))
            continue
        if role == "user":
            turn, parts = "user", _user_parts(message.get("content"), index)
        elif role == "assistant":
            turn, parts = "model", _assistant_parts(message, index, names)
        elif role in ("tool", "function"):
            turn, parts = "user", [_function_response(message, index, names)]
        else:
            raise _invalid(f"messages[{index}].role {role!r} is not supported")
        if not parts:
            continue
        if contents and contents[-1]["role"] == turn:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn, "parts": parts})
    instruction = {"parts": system} if system else None
    return instruction, contents


def _user_parts(content: Any, index: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _invalid(f"messages[{index}].content must be a string or a list of parts")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            text = part.get("text")
            if isinstance(text, str) and text:
                parts.append({"text": text})
        elif kind == "image_url":
            parts.append(_image(part.get("image_url"), index))
        elif kind == "input_audio":
            parts.append(_audio(part.get("input_audio"), index))
        elif kind == "file":
            parts.append(_file(part.get("file"), index))
        else:
            raise _invalid(f"messages[{index}] has a content part of type {kind!r}")
    return parts


def _text_parts(content: Any, index: int) -> list[dict[str, Any]]:
    text = _text(content, index)
    return [{"text": text}] if text else []


def _text(content: Any, index: int) -> str:
    """The text of a content that may only hold text (system, assistant and tool messages)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") in ("text", "refusal"):
                value = part.get("text", part.get("refusal"))
                texts.append(value if isinstance(value, str) else "")
            else:
                raise _invalid(f"messages[{index}] may only hold text parts")
        return "".join(texts)
    raise _invalid(f"messages[{index}].content must be a string or a list of text parts")


def _assistant_parts(
    message: Mapping[str, Any], index: int, names: dict[str, str]
) -> list[dict[str, Any]]:
    parts = _text_parts(message.get("content"), index)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise _invalid(f"messages[{index}].tool_calls must be a list")
    for call in calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(name, str) or not name:
            raise _invalid(f"messages[{index}].tool_calls needs a function with a name")
        identifier = call.get("id")
        if isinstance(identifier, str):
            names[identifier] = name
        part: dict[str, Any] = {
            "functionCall": {"name": name, "args": _arguments(function.get("arguments"), index)}
        }
        signature = signature_of(call)
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping) and isinstance(legacy.get("name"), str):
        arguments = _arguments(legacy.get("arguments"), index)
        parts.append({"functionCall": {"name": legacy["name"], "args": arguments}})
    return parts


def _arguments(arguments: Any, index: int) -> dict[str, Any]:
    """A call's arguments (a JSON text in OpenAI's format) as the object Gemini wants."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, str):
        try:
            value = msgspec.json.decode(arguments)
        except msgspec.DecodeError:
            value = None
        if isinstance(value, dict):
            return value
    raise _invalid(f"messages[{index}] has tool-call arguments that are not a JSON object")


def _function_response(
    message: Mapping[str, Any], index: int, names: dict[str, str]
) -> dict[str, Any]:
    name = message.get("name")
    identifier = message.get("tool_call_id")
    if isinstance(identifier, str) and identifier in names:
        name = names[identifier]
    if not isinstance(name, str) or not name:
        raise _invalid(
            f"messages[{index}] answers tool call {identifier!r}, which no earlier assistant "
            "message made; Gemini needs the called function's name"
        )
    text = _text(message.get("content"), index)
    return {"functionResponse": {"name": name, "response": {"content": text}}}


def _image(image: Any, index: int) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url:
        raise _invalid(f"messages[{index}] has an image_url part without a url")
    if url.startswith("data:"):
        mime, data = _data_url(url, index)
        return {"inlineData": {"mimeType": mime, "data": data}}
    scheme = urlparse(url).scheme
    if scheme not in ("http", "https", "gs"):
        raise _invalid(
            f"messages[{index}] has an image_url that is neither a data URL nor an http(s) URL"
        )
    guessed = mimetypes.guess_type(urlparse(url).path)[0]
    mime = guessed if guessed and guessed.startswith("image/") else _DEFAULT_IMAGE
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _audio(audio: Any, index: int) -> dict[str, Any]:
    data = audio.get("data") if isinstance(audio, Mapping) else None
    kind = audio.get("format") if isinstance(audio, Mapping) else None
    if not isinstance(data, str) or kind not in _AUDIO:
        raise _invalid(f"messages[{index}] has an input_audio part without data in wav or mp3")
    return {"inlineData": {"mimeType": _AUDIO[kind], "data": data}}


def _file(file: Any, index: int) -> dict[str, Any]:
    data = file.get("file_data") if isinstance(file, Mapping) else None
    if not isinstance(data, str) or not data.startswith("data:"):
        raise _invalid(
            f"messages[{index}] has a file part without file_data as a data URL "
            "(OpenAI file ids cannot be sent to Gemini)"
        )
    mime, payload = _data_url(data, index)
    return {"inlineData": {"mimeType": mime, "data": payload}}


def _data_url(url: str, index: int) -> tuple[str, str]:
    header, _, data = url.partition(",")
    mime, _, encoding = header.removeprefix("data:").partition(";")
    if encoding != "base64" or not mime or not data:
        raise _invalid(f"messages[{index}] has a data URL that is not base64 with a MIME type")
    return mime, data


def _invalid(problem: str) -> InvalidRequestError:
    return InvalidRequestError(f"gemini: {problem}", param="messages")
