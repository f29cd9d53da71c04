"""AWS's binary event-stream framing, written as Bedrock writes ConverseStream frames.

A frame is a prelude (total length and headers length, big-endian uint32 each, then a CRC32 of
those eight bytes), the headers, the payload, and a CRC32 of everything before it. Each header
is a name (one length byte, then UTF-8), a type byte (7: string) and a value (a two-byte length,
then UTF-8). Bedrock's events carry ``:event-type``, ``:content-type`` (application/json) and
``:message-type`` (event); its exceptions carry ``:exception-type`` and ``:message-type``
(exception), with ``{"message"}`` as the payload.
"""

from __future__ import annotations

import struct
from binascii import crc32
from typing import Any

import msgspec

_STRING = 7


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One frame with string headers."""
    encoded = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", crc32(prelude) & 0xFFFFFFFF)
    message = prelude + encoded + payload
    return message + struct.pack(">I", crc32(message) & 0xFFFFFFFF)


def event(name: str, payload: dict[str, Any]) -> bytes:
    """A ConverseStream event such as ``contentBlockDelta``."""
    headers = {
        ":event-type": name,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return frame(headers, msgspec.json.encode(payload))


def exception(member: str, message: str) -> bytes:
    """An exception frame, named by its lower-camel member name (``throttlingException``)."""
    headers = {
        ":exception-type": member,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, msgspec.json.encode({"message": message}))


def corrupt(data: bytes) -> bytes:
    """A frame whose message CRC does not match: what a reader must refuse."""
    return data[:-4] + struct.pack(">I", (struct.unpack(">I", data[-4:])[0] ^ 0xFFFFFFFF))


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack(">B", len(raw_name))
        + raw_name
        + struct.pack(">BH", _STRING, len(raw_value))
        + raw_value
    )
