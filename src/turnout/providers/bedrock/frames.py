"""AWS event-stream frames read as they arrive, for both of Bedrock's streamed answers
(ConverseStream's events, and InvokeModelWithResponseStream's chunks of a Claude model).

botocore's `EventStreamBuffer` checks each frame's two CRCs; a frame that fails them, or passes
them with impossible headers or a payload that does not decode, makes the stream as broken as a
connection cut mid-frame: a `StreamInterruptedError`, so the router can continue it elsewhere.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Callable
from typing import Any

from botocore.eventstream import EventStreamBuffer, ParserError  # type: ignore[import-untyped]

from turnout.errors import ProviderError, StreamInterruptedError
from turnout.providers.bedrock.messages import PROVIDER

#: A frame's handler: its headers and payload; False to read no further frame.
FrameHandler = Callable[[dict[str, Any], bytes], bool]


def read_frames(
    frames: EventStreamBuffer, piece: bytes, take: FrameHandler, done: Callable[[], bool]
) -> ProviderError | None:
    """Add `piece` to `frames` and hand each whole frame to `take`, until it declines or
    `done()` (the rest, if any, is past the end of the answer); the failure met, if any."""
    frames.add_data(piece)
    try:
        for frame in frames:
            if not take(frame.headers, frame.payload) or done():
                break
    except (ParserError, KeyError, ValueError, struct.error, binascii.Error):
        return StreamInterruptedError(f"{PROVIDER} sent a malformed event-stream frame")
    except ProviderError as failure:
        return failure
    return None
