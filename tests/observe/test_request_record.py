"""The request record assembler and the request log's JSON line, from events on a manual clock."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from turnout.errors import FailureKind
from turnout.observe.events import (
    AttemptFinished,
    AttemptStarted,
    HedgeSettled,
    HttpRequestFinished,
    RequestFinished,
    RequestStarted,
)
from turnout.observe.request_log import (
    CONTENT_LIMIT,
    REQUESTS_LOGGER,
    JsonLineFormatter,
    LogWriter,
    RequestLog,
)
from turnout.observe.request_record import RecordAssembler, RequestRecord, key_label
from turnout.testing import ManualClock
from turnout.wire import Principal, Usage

ALICE = Principal("key:k1", key_id="k1", key_hash="0123456789abcdef" * 4, key_alias="alice")
#: Every field of a line, in the order the request log writes them (content capture off).
FIELDS = [
    "time",
    "request_id",
    "key",
    "route",
    "model",
    "model_group",
    "deployment",
    "provider",
    "status",
    "error",
    "stream",
    "latency_ms",
    "ttft_ms",
    "tokens",
    "cost",
    "attempts",
]
ATTEMPT_FIELDS = [
    "deployment",
    "provider",
    "reason",
    "outcome",
    "error",
    "status",
    "start_ms",
    "duration_ms",
    "ttft_ms",
    "upstream_request_id",
]


class Kept:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def on_record(self, record: RequestRecord) -> None:
        self.records.append(record)


def _attempt(
    clock: ManualClock,
    number: int,
    name: str,
    *,
    took: float,
    reason: str = "primary",
    error: FailureKind | None = None,
    status: int | None = None,
    usage: Usage | None = None,
    cost: float | None = None,
    upstream_id: str | None = None,
    group: str = "chat",
) -> list[Any]:
    started = clock.now()
    begin = AttemptStarted("r1", group, f"id-{name}", number, started, False, reason, name, "p")
    clock.advance(took)
    end = AttemptFinished(
        "r1",
        group,
        f"id-{name}",
        number,
        clock.now(),
        took,
        error,
        status,
        usage,
        cost,
        None,
        False,
        ALICE,
        reason,
        name,
        "openai",
        "gpt-x",
        upstream_request_id=upstream_id,
    )
    return [begin, end]


def _http(took: float, status: int = 200, **fields: Any) -> HttpRequestFinished:
    values: dict[str, Any] = {
        "route": "chat_completions",
        "model_group": "chat",
        "status": status,
        "duration": took,
        "stream": False,
        "request_id": "r1",
        "model": "smart",
        "principal": ALICE,
    }
    values.update(fields)
    return HttpRequestFinished(**values)


def test_a_fallback_chain_becomes_one_record_with_every_attempt() -> None:
    clock = ManualClock(start=100.0)
    kept = Kept()
    assembler = RecordAssembler(clock, [kept])
    events: list[Any] = [RequestStarted("r1", "smart", ALICE, clock.now(), False)]
    events += _attempt(
        clock, 1, "east", took=0.25, error=FailureKind.SERVER_ERROR, status=500, upstream_id="u1"
    )
    clock.advance(0.1)  # backoff
    events += _attempt(
        clock,
        2,
        "west",
        took=0.5,
        reason="fallback",
        usage=Usage(10, 5, 2),
        cost=0.002,
        upstream_id="u2",
        group="backup",
    )
    events.append(RequestFinished("r1", "smart", ALICE, clock.now()))
    for event in events:
        assembler.on_event(event)
    assert kept.records == []  # behind the gateway, the HTTP answer ends the request
    assembler.on_event(_http(0.9, client_request_id="mine-1"))
    [record] = kept.records
    assert assembler.open_requests == 0
    line = msgspec.json.decode(msgspec.json.encode(record))
    assert list(line) == [*FIELDS, "gateway_id"]
    assert line["time"] == "2027-01-15T08:01:39.950Z"  # the epoch plus 100.85 - 0.9 seconds
    assert line["request_id"] == "mine-1"
    assert line["gateway_id"] == "r1"
    assert line["key"] == "alice"
    assert line["model"] == "smart"
    assert line["model_group"] == "backup"  # the fallback's, which served
    assert (line["deployment"], line["provider"], line["status"]) == ("west", "openai", 200)
    assert line["latency_ms"] == 900.0
    assert line["tokens"] == {"prompt": 10, "completion": 5, "total": 15, "cached": 2}
    assert line["cost"] == 0.002
    first, second = line["attempts"]
    assert list(first) == ATTEMPT_FIELDS
    assert first == {
        "deployment": "east",
        "provider": "openai",
        "reason": "primary",
        "outcome": "error",
        "error": "server_error",
        "status": 500,
        "start_ms": 0.0,
        "duration_ms": 250.0,
        "ttft_ms": None,
        "upstream_request_id": "u1",
    }
    assert (second["deployment"], second["reason"], second["outcome"]) == ("west", "fallback", "ok")
    assert second["start_ms"] == 350.0
    assert second["upstream_request_id"] == "u2"


def test_a_refusal_before_routing_is_a_record_without_attempts() -> None:
    clock = ManualClock()
    kept = Kept()
    assembler = RecordAssembler(clock, [kept])
    assembler.on_event(
        _http(0.002, status=401, principal=None, model=None, model_group="unknown", error="x")
    )
    [record] = kept.records
    assert record.attempts == []
    assert (record.status, record.key, record.model_group, record.error) == (401, None, None, "x")
    assert record.deployment is None and record.cost is None


def test_a_hedge_that_lost_its_race_is_marked_so() -> None:
    clock = ManualClock()
    kept = Kept()
    assembler = RecordAssembler(clock, [kept])
    assembler.on_event(RequestStarted("r1", "chat", ALICE, clock.now(), False))
    for event in _attempt(clock, 1, "slow", took=0.5, error=FailureKind.CANCELLED, cost=1e-5):
        assembler.on_event(event)
    for event in _attempt(clock, 2, "quick", took=0.1, reason="hedge", usage=Usage(3, 4)):
        assembler.on_event(event)
    assembler.on_event(HedgeSettled("r1", "chat", "id-quick", True, "id-slow"))
    assembler.on_event(_http(0.7))
    [record] = kept.records
    assert [a.outcome for a in record.attempts] == ["lost_race", "ok"]
    assert record.deployment == "quick"


def test_a_library_router_ends_records_at_request_finished() -> None:
    clock = ManualClock()
    kept = Kept()
    assembler = RecordAssembler(clock, [kept], ends_with_http=False)
    assembler.on_event(RequestStarted("r1", "chat", None, clock.now(), True))
    for event in _attempt(clock, 1, "a", took=0.2, error=FailureKind.TIMEOUT):
        assembler.on_event(event)
    assembler.on_event(RequestFinished("r1", "chat", None, clock.now()))
    [record] = kept.records
    assert (record.status, record.error, record.stream, record.route) == (
        None,
        "timeout",
        True,
        None,
    )
    assert record.latency_ms == 200.0


def test_memory_is_bounded_when_requests_never_end() -> None:
    clock = ManualClock()
    assembler = RecordAssembler(clock, [Kept()], max_open=3)
    for number in range(10):
        assembler.on_event(RequestStarted(f"r{number}", "chat", None, clock.now(), False))
    assert assembler.open_requests == 3
    assert assembler.dropped == 7
    with pytest.raises(ValueError, match="max_open"):
        RecordAssembler(clock, max_open=0)


def test_a_key_is_shown_by_alias_or_digest_prefix_never_whole() -> None:
    assert key_label(ALICE) == "alice"
    assert key_label(Principal("key:k2", key_id="k2", key_hash="fedcba98" * 8)) == "fedcba98"
    assert key_label(Principal("master")) == "master"
    assert key_label(Principal("anonymous")) is None
    assert key_label(None) is None


def _line(record: RequestRecord) -> dict[str, Any]:
    formatter = JsonLineFormatter()
    logged = logging.LogRecord(REQUESTS_LOGGER, logging.INFO, "", 0, record, (), None)
    decoded: dict[str, Any] = msgspec.json.decode(formatter.format(logged))
    return decoded


def test_captured_content_is_cut_to_its_bound_and_absent_otherwise() -> None:
    clock = ManualClock()
    kept = Kept()
    assembler = RecordAssembler(clock, [kept])
    assembler.on_event(_http(0.1))
    assert "messages" not in _line(kept.records[0])
    assembler.attach_content("r1", [{"role": "user", "content": "x" * 10_000}], "y" * 10_000)
    assembler.on_event(_http(0.1))
    line = _line(kept.records[1])
    assert line["messages"].startswith('[{"role":"user","content":"xxx')
    assert len(line["messages"]) == CONTENT_LIMIT
    assert line["answer"] == "y" * (CONTENT_LIMIT - 1) + "…"


def test_the_writer_writes_every_queued_line_before_it_stops(tmp_path: Path) -> None:
    path = tmp_path / "requests.log"
    path.write_text("earlier line\n")
    writer = LogWriter()
    writer.route(REQUESTS_LOGGER, str(path), JsonLineFormatter())
    writer.start()
    clock = ManualClock()
    assembler = RecordAssembler(clock, [RequestLog()])

    def finish(n: int) -> None:
        for i in range(250):
            assembler.on_event(_http(0.01, request_id=f"t{n}-{i}"))

    threads = [threading.Thread(target=finish, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.stop()
    lines = path.read_text().splitlines()
    assert lines[0] == "earlier line"  # appended, not truncated
    ids = {msgspec.json.decode(line)["request_id"] for line in lines[1:]}
    assert len(lines) == 1001 and len(ids) == 1000
    # Stopped: the logger is back to its ordinary handlers, and writes nothing here.
    assert not logging.getLogger(REQUESTS_LOGGER).handlers
    assembler.on_event(_http(0.01))
    assert len(path.read_text().splitlines()) == 1001


def test_a_plain_message_on_the_request_logger_is_still_json() -> None:
    formatter = JsonLineFormatter()
    logged = logging.LogRecord(REQUESTS_LOGGER, logging.INFO, "", 0, "hello %s", ("you",), None)
    assert msgspec.json.decode(formatter.format(logged))["message"] == "hello you"
