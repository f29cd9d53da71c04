"""OpenAI chat messages as Converse's ``system`` blocks and ``messages`` turns.

Converse takes the system prompt apart (``system: [{"text"}]``) and a conversation of ``user``
and ``assistant`` turns that alternate, each a list of content blocks: ``text``, ``image``
(``{"format": png|jpeg|gif|webp, "source": {"bytes": <base64>}}``), ``toolUse`` (the
assistant's call: ``toolUseId``, ``name``, ``input`` as a JSON value) and ``toolResult`` (the
answer, in a user turn: ``toolUseId`` and ``content: [{"text"}]``). So system and developer
messages are hoisted into ``system``, tool messages become ``toolResult`` blocks of a user turn,
and consecutive turns of one role are merged into one.

Converse takes image bytes only (or S3 locations), never an https URL, so an image by URL is
refused with a 400 that says so rather than fetched: turnout does not download on a caller's
behalf. ``toolResult.status`` is left out: OpenAI's tool message carries no error flag, and the
field is accepted by some models only (Nova and Claude, per the API reference).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from turnout.errors import InvalidRequestError

PROVIDER = "bedrock"

#: Media types of data URLs and the Converse image format each becomes.
IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


def converse_messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``system`` blocks and the alternating ``messages`` turns of an OpenAI conversation."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError(
            f"{PROVIDER}: `messages` must be a non-empty list", param="messages"
        )
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{PROVIDER}: {where} must be an object", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend({"text": text} for text in _texts(message.get("content"), where))
        elif role == "user":
            _append(turns, "user", _user_blocks(message.get("content"), where))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message, where))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message, where)])
        else:
            raise InvalidRequestError(
                f"{PROVIDER}: {where} has role {role!r}; expected system, developer, user, "
                "assistant or tool",
                param=f"{where}.role",
            )
    return system, turns


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Add a turn, merged into the previous one when the role repeats (Converse alternates)."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        previous: list[dict[str, Any]] = turns[-1]["content"]
        if role == "user" and "toolResult" in blocks[0]:
            # Tool results answer the assistant's calls and must lead the user turn.
            position = sum(1 for block in previous if "toolResult" in block)
            previous[position:position] = blocks
        else:
            previous.extend(blocks)
        return
    turns.append({"role": role, "content": blocks})


def _texts(content: Any, where: str) -> list[str]:
    """The non-blank texts of a content that may hold text only (system, tool results)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content.strip() else []
    if isinstance(content, list):
        texts = []
        for number, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequestError(
                    f"{PROVIDER}: {where}.content may hold text parts only",
                    param=f"{where}.content[{number}]",
                )
            text = part.get("text")
            if isinstance(text, str) and text.strip():
                texts.append(text)
        return texts
    raise InvalidRequestError(
        f"{PROVIDER}: {where}.content must be a string or a list of parts",
        param=f"{where}.content",
    )


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"text": text} for text in _texts(content, where)]
    blocks: list[dict[str, Any]] = []
    for number, part in enumerate(content):
        place = f"{where}.content[{number}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if isinstance(text, str) and text.strip():
                blocks.append({"text": text})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), place))
        else:
            raise InvalidRequestError(
                f"{PROVIDER}: content parts of type {kind!r} are not supported; "
                "use text and image_url parts",
                param=place,
            )
    return blocks


def _image(image: Any, place: str) -> dict[str, Any]:
    """A data URL as an image block; anything else is refused with a message that says why."""
    url = image.get("url") if isinstance(image, dict) else image
    param = f"{place}.image_url"
    if not isinstance(url, str) or not url.startswith("data:"):
        raise InvalidRequestError(
            f"{PROVIDER}: images by URL are not supported: Bedrock's Converse API takes image "
            "bytes only; send the image inline as a data URL (data:image/png;base64,...)",
            param=param,
        )
    header, _, data = url[5:].partition(",")
    media, _, encoding = header.partition(";")
    image_format = IMAGE_FORMATS.get(media.lower())
    if image_format is None or encoding.lower() != "base64":
        raise InvalidRequestError(
            f"{PROVIDER}: the image must be a base64 data URL of a png, jpeg, gif or webp image",
            param=param,
        )
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(
            f"{PROVIDER}: the image's data URL is not valid base64", param=param
        ) from None
    # JSON carries Converse's blob as base64 text: the data URL's own payload.
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"text": text} for text in _texts(message.get("content"), where)
    ]
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequestError(
            f"{PROVIDER}: {where}.tool_calls must be a list", param=f"{where}.tool_calls"
        )
    for number, call in enumerate(calls):
        place = f"{where}.tool_calls[{number}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(call.get("id"), str):
            raise InvalidRequestError(
                f"{PROVIDER}: {place} needs an id and a function", param=place
            )
        arguments = function.get("arguments") or "{}"
        try:
            value = msgspec.json.decode(arguments) if isinstance(arguments, str) else arguments
        except msgspec.DecodeError:
            raise InvalidRequestError(
                f"{PROVIDER}: {place}.function.arguments is not valid JSON",
                param=f"{place}.function.arguments",
            ) from None
        blocks.append(
            {"toolUse": {"toolUseId": call["id"], "name": function.get("name"), "input": value}}
        )
    return blocks


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError(
            f"{PROVIDER}: {where} needs the tool_call_id it answers",
            param=f"{where}.tool_call_id",
        )
    texts = _texts(message.get("content"), where)
    # Converse wants at least one content block; an empty result is an empty text.
    content = [{"text": text} for text in texts] or [{"text": ""}]
    return {"toolResult": {"toolUseId": call_id, "content": content}}
