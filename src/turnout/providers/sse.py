"""Server-sent events, decoded incrementally from the bytes of a response body.

Follows the event-stream format of the HTML standard: lines end in LF, CRLF or CR; ``data``
lines of one event are joined with LF; a blank line dispatches the event; lines starting with a
colon are comments (keep-alives). Event data stays bytes, so a gateway can forward it as it came.
"""

from __future__ import annotations

from dataclasses import dataclass

from turnout.errors import StreamInterruptedError

#: Largest event (or unterminated line) held while it arrives. Real events are a few kilobytes
#: (a tool call's arguments arrive in many); a stream that sends megabytes without ending an
#: event is broken, and holding it would let one upstream take the gateway's memory.
MAX_EVENT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: bytes
    event: str | None = None
    id: str | None = None


class SSEDecoder:
    """Feed it body chunks as they arrive; it returns the events they complete."""

    __slots__ = ("_buffer", "_data", "_event", "_held", "_id")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        #: Bytes of data lines held for the event being assembled.
        self._held = 0
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        lines = buffer.splitlines(keepends=True)
        # Keep an unterminated last line, and a lone CR that may be the first half of CRLF.
        if lines and (not lines[-1].endswith((b"\n", b"\r")) or lines[-1].endswith(b"\r")):
            self._buffer = lines.pop()
            if len(self._buffer) > MAX_EVENT_BYTES:
                raise _too_large()
        else:
            self._buffer = b""
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._line(line.rstrip(b"\r\n"))
            if event is not None:
                events.append(event)
        return events

    def finish(self) -> list[ServerSentEvent]:
        """The end of the body: a last event not followed by a blank line still counts."""
        events = self.feed(b"\n") if self._buffer else []
        if self._data:
            event = self._line(b"")
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            if not self._data:
                self._event = None
                return None
            data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
            event = ServerSentEvent(data, self._event, self._id)
            self._data = []
            self._held = 0
            self._event = None
            return event
        if line[0] == 0x3A:  # ":" starts a comment
            return None
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._held += len(value)
            if self._held > MAX_EVENT_BYTES:
                raise _too_large()
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            self._id = value.decode("utf-8", "replace")
        return None


def _too_large() -> StreamInterruptedError:
    return StreamInterruptedError(
        f"the upstream sent an event larger than {MAX_EVENT_BYTES // (1024 * 1024)} MiB"
    )
