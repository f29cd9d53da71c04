from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from turnout.providers.sse import ServerSentEvent, SSEDecoder


def _all(pieces: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = []
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.finish()


def test_events_comments_and_multiline_data() -> None:
    body = b": keep-alive\n\nevent: message\nid: 7\ndata: first\ndata: second\n\ndata:[DONE]\n\n"
    assert _all([body]) == [
        ServerSentEvent(b"first\nsecond", "message", "7"),
        ServerSentEvent(b"[DONE]", None, "7"),
    ]


def test_crlf_split_across_reads_does_not_end_an_event_early() -> None:
    assert _all([b"data: a\r", b"\ndata: b\r\n", b"\r\n"]) == [ServerSentEvent(b"a\nb")]


def test_a_last_event_without_a_blank_line_still_counts() -> None:
    assert _all([b"data: {}\n\ndata: last"]) == [ServerSentEvent(b"{}"), ServerSentEvent(b"last")]


_payloads = st.lists(
    st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
    min_size=1,
    max_size=8,
)


@given(_payloads, st.sampled_from([b"\n", b"\r\n", b"\r"]), st.data())
def test_any_split_of_the_bytes_gives_the_same_events(
    payloads: list[bytes], newline: bytes, data: st.DataObject
) -> None:
    body = b"".join(b"data: " + p + newline + newline for p in payloads)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(body) - 1)), max_size=10)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert [e.data for e in _all(pieces)] == payloads
