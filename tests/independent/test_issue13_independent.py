"""Issue 13, "See every request", checked from the issue's text and the agreed interface alone.

Every scenario runs a real ``turnout serve`` from a LiteLLM ``config.yaml`` in front of fake
OpenAI upstreams (tests/fakes/) that fail on command, and calls it with the official `openai`
SDK or, where the wire is the point (a raw SSE comment, a header a client library would refuse),
with plain HTTP. Traces are received by a real OTLP/HTTP receiver on loopback and decoded with
the protocol's own protobuf messages. Secrets and message content are recognisable strings,
searched for in everything the gateway wrote.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import pytest
from issue13_checks import (
    CHAT_PATH,
    CONTENT,
    SECRETS,
    SPARE_ID,
    assert_attempt_spans,
    assert_generated,
    assert_line_shape,
    assert_no_content,
    assert_openai_error,
    assert_upstream_id,
    chat_body,
    first_event,
    fresh_id,
    grew,
    ident_of,
    is_number,
    master_headers,
    samples,
    snapshot,
    streamed_raw,
    tracing_env,
    upstream_ids,
    upstream_parent,
    usage_of,
)
from issue13_otlp import OtlpReceiver, ReceivedSpan, default_endpoint_receiver
from issue13_rig import (
    HASH_ONLY,
    INPUT_PRICE,
    MASTER_KEY,
    MESSAGES,
    OUTPUT_PRICE,
    PRIMARY_MODEL,
    PROMPT_MARKER,
    REPLY,
    REPLY_MARKER,
    SPARE_MODEL,
    UPSTREAM_KEY,
    WRONG_KEY,
    derived_name,
    eventually,
    eventually_async,
    http,
    json_lines,
    objects_naming,
    raw_request,
    summary_comment,
    topology,
    walk,
)

from fakes.fake_openai import Fault

# ---- x-request-id: generated, echoed, forwarded -----------------------------------------------


async def test_request_id_is_generated_unique_echoed_and_forwarded_upstream(
    tmp_path: Path,
) -> None:
    async with topology(tmp_path) as top:
        client = top.served.sdk()
        generated: list[str] = []
        for index in range(3):
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=MESSAGES
            )
            assert raw.parse().choices[0].message.content == REPLY
            ident = assert_generated(raw.headers.get("x-request-id"), f"request {index}")
            seen = top.primary.requests[-1].headers.get("x-request-id")
            assert seen == ident, (
                f"the upstream must be sent the request's id {ident!r}, it saw {seen!r}"
            )
            generated.append(ident)
        assert len(set(generated)) == len(generated), f"generated ids repeat: {generated}"

        given = fresh_id("client-chosen")
        boundary = "b" * 100 + uuid.uuid4().hex[:28]
        for chosen in (given, boundary):
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=MESSAGES, extra_headers={"x-request-id": chosen}
            )
            assert raw.headers.get("x-request-id") == chosen, (
                f"a valid client x-request-id ({len(chosen)} chars) must be echoed, got "
                f"{raw.headers.get('x-request-id')!r}"
            )
            assert top.primary.requests[-1].headers.get("x-request-id") == chosen

        streamed = fresh_id("client-stream")
        for wanted in (streamed, None):
            headers = {"x-request-id": wanted} if wanted else {}
            opened = await client.chat.completions.with_raw_response.create(
                model="chat", messages=MESSAGES, stream=True, extra_headers=headers
            )
            parts = [
                choice.delta.content or ""
                async for chunk in opened.parse()
                for choice in chunk.choices
            ]
            assert "".join(parts) == REPLY
            echoed = opened.headers.get("x-request-id")
            if wanted:
                assert echoed == wanted, f"a stream must echo x-request-id, got {echoed!r}"
            else:
                assert_generated(echoed, "a stream without x-request-id")
                assert echoed not in generated
            assert top.primary.requests[-1].headers.get("x-request-id") == echoed

        for path in ("/health", "/v1/models", "/status", f"/no-such-page-{uuid.uuid4().hex}"):
            chosen = fresh_id("plain")
            status, headers, _ = await http(
                "GET", top.served.url + path, headers={"x-request-id": chosen}
            )
            echoed = headers.get("x-request-id")
            assert echoed == chosen, f"GET {path} ({status}) must echo x-request-id, got {echoed!r}"
            status, headers, _ = await http("GET", top.served.url + path)
            assert_generated(headers.get("x-request-id"), f"GET {path} ({status})")
        await client.close()


async def test_request_id_and_turnout_headers_on_every_refusal(tmp_path: Path) -> None:
    async with topology(tmp_path, master_key=MASTER_KEY) as top:
        url = top.served.url

        # 401: a key the gateway does not know, through the SDK.
        chosen = fresh_id("unauthorized")
        wrong = top.served.sdk(WRONG_KEY)
        with pytest.raises(openai.AuthenticationError) as refused:
            await wrong.chat.completions.create(
                model="chat", messages=MESSAGES, extra_headers={"x-request-id": chosen}
            )
        assert refused.value.response.headers.get("x-request-id") == chosen, (
            f"401 must echo x-request-id, headers {dict(refused.value.response.headers)}"
        )
        status, headers, text = await http(
            "POST",
            url + CHAT_PATH,
            headers={"Authorization": "Bearer " + WRONG_KEY},
            json_body=chat_body(),
        )
        assert status == 401, text
        assert_generated(headers.get("x-request-id"), "401 without x-request-id")
        assert WRONG_KEY not in text and MASTER_KEY not in text
        await wrong.close()

        # 400: a body that is not JSON.
        chosen = fresh_id("bad-json")
        status, headers, text = await http(
            "POST",
            url + CHAT_PATH,
            headers=master_headers(**{"x-request-id": chosen, "Content-Type": "application/json"}),
            data=b'{"model": "chat", "messages": [',
        )
        assert status == 400, f"a body that is not JSON: expected 400, got {status} {text[:300]}"
        assert_openai_error(text, "400 for bad JSON")
        assert headers.get("x-request-id") == chosen, f"400 must echo x-request-id: {headers}"

        # 404: no such path.
        chosen = fresh_id("missing")
        status, headers, _ = await http(
            "GET",
            url + f"/v1/no-such-{uuid.uuid4().hex}",
            headers=master_headers(**{"x-request-id": chosen}),
        )
        assert status == 404
        assert headers.get("x-request-id") == chosen, f"404 must echo x-request-id: {headers}"

        client = top.served.sdk(MASTER_KEY)
        # 5xx: every attempt of the group fails.
        chosen = fresh_id("all-failed")
        try:
            await client.chat.completions.create(
                model="broken", messages=MESSAGES, extra_headers={"x-request-id": chosen}
            )
            raise AssertionError("a group whose every answer is a 500 served a request")
        except openai.APIStatusError as error:
            failed = error.response
        assert failed.status_code >= 500, f"expected a 5xx, got {failed.status_code}"
        assert failed.headers.get("x-request-id") == chosen, dict(failed.headers)
        tried = len(top.broken.requests)
        assert tried >= 2, f"num_retries 1: expected two attempts upstream, saw {tried}"
        assert failed.headers.get("x-turnout-attempts") == str(tried), (
            f"x-turnout-attempts on the {failed.status_code} must count the {tried} attempts "
            f"made, headers {dict(failed.headers)}"
        )
        assert failed.headers.get("x-turnout-model-group") == "broken", dict(failed.headers)
        named = failed.headers.get("x-turnout-deployment")
        if named is not None:
            assert named == derived_name("broken"), f"x-turnout-deployment {named!r}"
        assert {request.headers.get("x-request-id") for request in top.broken.requests} == {
            chosen
        }, "every attempt upstream must carry the caller's x-request-id"

        # 429: the group's only upstream is rate limited.
        chosen = fresh_id("limited")
        try:
            await client.chat.completions.create(
                model="limited", messages=MESSAGES, extra_headers={"x-request-id": chosen}
            )
            raise AssertionError("a group whose every answer is a 429 served a request")
        except openai.APIStatusError as error:
            limited = error.response
        assert limited.status_code == 429, f"expected 429, got {limited.status_code} {limited.text}"
        assert limited.headers.get("x-request-id") == chosen, dict(limited.headers)
        assert limited.headers.get("x-turnout-model-group") == "limited", dict(limited.headers)
        assert limited.headers.get("x-turnout-attempts") == str(len(top.limited.requests)), (
            f"x-turnout-attempts on the 429: {dict(limited.headers)}, "
            f"{len(top.limited.requests)} attempts upstream"
        )
        await client.close()


async def test_invalid_request_ids_are_replaced_never_reflected(tmp_path: Path) -> None:
    """Too long, spaces, tabs, control characters, non-ASCII, a header far past any limit, and
    attempts to smuggle a header in: each is ignored (a fresh id is sent back and upstream) or,
    where the HTTP parser refuses the request itself, refused with a 4xx; never echoed."""
    body = json.dumps(chat_body()).encode()
    hostile: list[bytes] = [
        b"a" * 129,
        b"has space",
        b"tab\there",
        b"ctl\x01char",
        b"del\x7fchar",
        "\u00fcn\u00efcode".encode(),
        b"x" * 20_000,
        b"evil\rSet-Cookie: pwned=1",
        b"evil%0d%0aSet-Cookie:%20pwned=1 x",
    ]
    async with topology(tmp_path) as top:
        for value in hostile:
            shown = value[:40]
            answer = await raw_request(
                top.served.port,
                "POST",
                CHAT_PATH,
                [(b"Content-Type", b"application/json"), (b"x-request-id", value)],
                body,
            )
            assert answer.status < 500, (
                f"x-request-id {shown!r}: {answer.status} {answer.text[:200]}"
            )
            assert "set-cookie" not in answer.headers, f"{shown!r} injected {answer.headers}"
            assert not any("pwned" in v for vs in answer.headers.values() for v in vs)
            echoed = answer.header("x-request-id")
            if answer.status == 200:
                ident = assert_generated(echoed, f"x-request-id {shown!r}")
                assert value.decode("latin-1") not in ident and ident.encode() != value
                seen = top.primary.requests[-1].headers.get("x-request-id")
                assert seen == ident, (
                    f"x-request-id {shown!r}: the upstream must get the replacement {ident!r}, "
                    f"got {seen!r}"
                )
            else:
                assert 400 <= answer.status < 500
                assert_openai_error(answer.text, f"{answer.status} for x-request-id {shown!r}")
                if echoed is not None:
                    assert_generated(
                        echoed, f"x-request-id {shown!r}", not_equal=value.decode("latin-1")
                    )
        for value in (b"a" * 129, b"has space", b"x" * 20_000):
            assert all(ident is None or value.decode() not in ident for ident in upstream_ids(top))
        # Still serving after all that.
        client = top.served.sdk()
        reply = await client.chat.completions.create(model="chat", messages=MESSAGES)
        assert reply.choices[0].message.content == REPLY
        await client.close()


# ---- streams: the summary comment before [DONE] ----------------------------------------------


async def test_stream_ends_with_a_summary_comment_the_sdk_ignores(tmp_path: Path) -> None:
    async with topology(tmp_path) as top:
        url = top.served.url
        ident = fresh_id("stream-summary")
        status, headers, lines = await streamed_raw(url, "chat", ident)
        assert status == 200, lines
        assert lines[-1] == "data: [DONE]", f"the stream must end with [DONE]: {lines[-3:]}"
        found = summary_comment(lines)
        assert found is not None, f"no ': turnout {{...}}' comment in the stream: {lines}"
        index, summary = found
        assert index == len(lines) - 2, (
            f"the summary comment must come just before data: [DONE]: {lines[index:]}"
        )
        assert summary.get("request_id") == ident == headers.get("x-request-id"), summary
        assert summary.get("attempts") == 1, summary
        assert summary.get("model_group") == "chat", summary
        assert summary.get("deployment") == derived_name("chat"), summary
        usage = usage_of(lines)
        expected = usage["prompt_tokens"] * INPUT_PRICE + usage["completion_tokens"] * OUTPUT_PRICE
        cost = summary.get("cost")
        assert isinstance(cost, int | float) and abs(cost - expected) < 1e-9, (
            f"summary cost {cost!r}: the usage {usage} priced is {expected}"
        )
        assert isinstance(summary.get("usage"), dict) and summary["usage"], summary
        assert headers.get("x-turnout-deployment") == derived_name("chat"), headers

        # A stream retried before its first chunk: two attempts.
        top.solo.enqueue(Fault.server_error())
        ident = fresh_id("stream-retried")
        status, headers, lines = await streamed_raw(url, "solo", ident)
        assert status == 200, lines
        found = summary_comment(lines)
        assert found is not None and found[0] == len(lines) - 2, lines
        assert found[1].get("attempts") == 2 == len(top.solo.requests), (
            f"a stream retried once: summary {found[1]}, {len(top.solo.requests)} upstream"
        )
        assert headers.get("x-turnout-attempts") == "2", headers

        # The official SDK reads the same kind of stream without noticing the comment.
        client = top.served.sdk()
        stream = await client.chat.completions.create(
            model="chat",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts: list[str] = []
        usage_seen = None
        async for chunk in stream:
            usage_seen = chunk.usage or usage_seen
            parts.extend(choice.delta.content or "" for choice in chunk.choices)
        assert "".join(parts) == REPLY
        assert usage_seen is not None and usage_seen.completion_tokens > 0
        await client.close()

        # A stream broken after its first chunk, with nowhere to continue: the summary comes
        # before the error event, and there is no [DONE].
        top.fragile.enqueue(Fault("cut", after_chunks=3))
        top.fragile.set_default(Fault.server_error())
        status, headers, lines = await streamed_raw(url, "fragile", fresh_id("stream-broken"))
        top.fragile.set_default(None)
        assert status == 200, lines
        assert "data: [DONE]" not in lines, f"a broken stream must not end with [DONE]: {lines}"
        errors = [
            index
            for index, line in enumerate(lines)
            if line.startswith("data: {") and "error" in json.loads(line[len("data: ") :])
        ]
        assert errors, f"a broken stream must end with an error event: {lines}"
        found = summary_comment(lines)
        assert found is not None and found[0] == errors[0] - 1, (
            f"the summary comment must come just before the error event: {lines}"
        )


# ---- the request log ------------------------------------------------------------------------


async def test_request_log_has_one_json_line_per_request_with_its_attempts(
    tmp_path: Path,
) -> None:
    log = tmp_path / "requests.log"
    server = {"request_log": {"path": str(log)}}
    info = {"id": SPARE_ID}
    async with topology(tmp_path, master_key=MASTER_KEY, server=server, spare_info=info) as top:
        client = top.served.sdk(MASTER_KEY)
        ids = {label: fresh_id(f"log-{label}") for label in ("ok", "stream", "retry", "fallback")}
        ids["unauthorized"] = fresh_id("log-unauthorized")

        whole = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, extra_headers={"x-request-id": ids["ok"]}
        )
        ok_usage = whole.parse().usage
        assert whole.headers.get("x-turnout-deployment") == derived_name("chat"), whole.headers
        stream = await client.chat.completions.create(
            model="chat",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-request-id": ids["stream"]},
        )
        assert "".join([c.delta.content or "" async for k in stream for c in k.choices]) == REPLY
        top.solo.enqueue(Fault.server_error())
        await client.chat.completions.create(
            model="solo", messages=MESSAGES, extra_headers={"x-request-id": ids["retry"]}
        )
        before = len(top.primary.requests)
        top.primary.set_default(Fault.server_error())
        fell_back = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES, extra_headers={"x-request-id": ids["fallback"]}
        )
        top.primary.set_default(None)
        primary_tries = len(top.primary.requests) - before
        assert fell_back.headers.get("x-turnout-deployment") == SPARE_ID, fell_back.headers
        wrong = top.served.sdk(WRONG_KEY)
        try:
            await wrong.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": PROMPT_MARKER}],
                extra_headers={"x-request-id": ids["unauthorized"]},
            )  # fmt: skip
            raise AssertionError("a wrong key was served")
        except openai.AuthenticationError:
            pass
        await wrong.close()
        await client.close()

        def read() -> list[dict[str, Any]]:
            return json_lines(log.read_text()) if log.exists() else []

        lines = await eventually(read, lambda found: len(found) >= len(ids))
        await asyncio.sleep(0.5)
        lines = read()
        served = top.served
    raw_log = log.read_text()
    assert len(raw_log.strip().splitlines()) == len(lines) == len(ids), (
        f"expected exactly one JSON line for each of {len(ids)} requests, got:\n{raw_log}"
    )
    counted = Counter(line.get("request_id") for line in lines)
    assert counted == Counter(ids.values()), f"one line per request id: {counted} vs {ids}"
    by_label = {
        label: next(x for x in lines if x["request_id"] == ident) for label, ident in ids.items()
    }
    for line in lines:
        assert_line_shape(line)

    ok = by_label["ok"]
    assert (ok["status"], ok["error"], ok["stream"], ok["key"]) == (200, None, False, "master"), ok
    assert (ok["route"], ok["model"], ok["model_group"]) == ("chat_completions", "chat", "chat"), ok
    assert (ok["deployment"], ok["provider"]) == (derived_name("chat"), "openai"), ok
    assert ok_usage is not None
    tokens = ok["tokens"]
    assert (tokens["prompt"], tokens["completion"], tokens["total"]) == (
        ok_usage.prompt_tokens, ok_usage.completion_tokens, ok_usage.total_tokens
    ), tokens  # fmt: skip
    assert "cached" in tokens, tokens
    assert abs(ok["cost"] - float(whole.headers["x-turnout-cost"])) < 1e-8, ok
    [attempt] = ok["attempts"]
    assert (attempt["reason"], attempt["outcome"], attempt["status"]) == ("primary", "ok", 200)
    assert (attempt["deployment"], attempt["provider"]) == (derived_name("chat"), "openai")
    assert_upstream_id(attempt, ids["ok"])

    streamed = by_label["stream"]
    assert streamed["stream"] is True and streamed["status"] == 200, streamed
    assert is_number(streamed["ttft_ms"]) and streamed["ttft_ms"] >= 0, streamed
    assert streamed["tokens"]["completion"] > 0 and streamed["cost"] > 0, streamed

    retried = by_label["retry"]
    assert [(a["reason"], a["outcome"]) for a in retried["attempts"]] == [
        ("primary", "error"), ("retry", "ok")
    ], retried["attempts"]  # fmt: skip
    first, second = retried["attempts"]
    assert first["status"] == 500 and first["error"], first
    assert first["deployment"] == second["deployment"] == derived_name("solo"), retried
    assert second["start_ms"] >= first["start_ms"], retried
    assert_upstream_id(first, ids["retry"])
    assert_upstream_id(second, ids["retry"])
    assert first["upstream_request_id"] != second["upstream_request_id"]

    fallback = by_label["fallback"]
    chain = fallback["attempts"]
    assert len(chain) == primary_tries + 1, (
        f"{primary_tries} failed tries of chat and one of spare, got {chain}"
    )
    assert (chain[0]["reason"], chain[0]["outcome"]) == ("primary", "error"), chain
    assert all(
        a["deployment"] == derived_name("chat") and a["outcome"] == "error" for a in chain[:-1]
    )
    assert all(a["reason"] == "retry" for a in chain[1:-1]), chain
    assert (chain[-1]["reason"], chain[-1]["outcome"]) == ("fallback", "ok"), chain
    assert chain[-1]["deployment"] == fallback["deployment"] == SPARE_ID, fallback
    assert fallback["status"] == 200 and fallback["model"] == "chat", fallback

    refused = by_label["unauthorized"]
    assert refused["status"] == 401 and refused["error"], refused
    assert refused["attempts"] == [] and refused["deployment"] is None, refused

    everything = raw_log + served.output()
    for secret in SECRETS + CONTENT:
        assert secret not in everything, f"{secret!r} was written to the request log or output"
    for word in ("authorization", "bearer"):
        assert word not in raw_log.lower(), f"{word!r} in the request log:\n{raw_log}"


async def test_access_log_and_default_request_log_cover_every_request(tmp_path: Path) -> None:
    async with topology(tmp_path, master_key=MASTER_KEY) as top:
        missing_path = f"/no-such-page-{uuid.uuid4().hex}"
        status, _, _ = await http("GET", top.served.url + missing_path)
        assert status == 404
        refused_id, served_id = fresh_id("access-401"), fresh_id("access-200")
        status, _, _ = await http(
            "POST",
            top.served.url + CHAT_PATH,
            headers={"Authorization": f"Bearer {WRONG_KEY}", "x-request-id": refused_id},
            json_body=chat_body(),
        )
        assert status == 401
        status, _, _ = await http(
            "POST",
            top.served.url + CHAT_PATH,
            headers=master_headers(**{"x-request-id": served_id}),
            json_body=chat_body(),
        )
        assert status == 200

        def access() -> list[str]:
            return [line for line in top.served.output().splitlines() if "turnout.access" in line]

        lines = await eventually(access, lambda found: len(found) >= 3)
        missing = [line for line in lines if missing_path in line]
        assert len(missing) == 1 and re.search(r"\b404\b", missing[0]), (
            f"one turnout.access line for the 404 on {missing_path}: {lines}"
        )
        unauthorized = [x for x in lines if CHAT_PATH in x and re.search(r"\b401\b", x)]
        assert len(unauthorized) == 1, f"one turnout.access line for the 401: {lines}"
        assert [x for x in lines if CHAT_PATH in x and re.search(r"\b200\b", x)], lines

        def requests() -> list[dict[str, Any]]:
            return json_lines("".join(top.served.stdout))

        logged = await eventually(
            requests, lambda found: {refused_id, served_id} <= {x.get("request_id") for x in found}
        )
        counted = Counter(line.get("request_id") for line in logged)
        assert counted[served_id] == 1 and counted[refused_id] == 1, (
            f"the request log (stdout by default) must have one JSON line each for the 200 and "
            f"the 401: {logged}"
        )
        output = top.served.output()
    for secret in SECRETS:
        assert secret not in output, f"{secret!r} written to the process's output"


# ---- traces, end to end through an OTLP/HTTP receiver ----------------------------------------


async def test_trace_of_a_fallback_continues_the_client_trace_upstream(tmp_path: Path) -> None:
    log = tmp_path / "requests.log"
    server = {"request_log": {"path": str(log)}}
    async with (
        OtlpReceiver() as receiver,
        topology(tmp_path, server=server, env=tracing_env(receiver)) as top,
    ):
        trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
        ident = fresh_id("traced")
        client = top.served.sdk()
        top.primary.set_default(Fault.server_error())
        raw = await client.chat.completions.with_raw_response.create(
            model="chat",
            messages=MESSAGES,
            extra_headers={
                "traceparent": f"00-{trace_id}-{client_span}-01",
                "x-request-id": ident,
            },
        )
        top.primary.set_default(None)
        assert raw.parse().choices[0].message.content == REPLY
        failed = list(top.primary.requests)
        served = list(top.spare.requests)
        assert failed and len(served) == 1, (len(failed), len(served))

        def spans() -> list[ReceivedSpan]:
            return receiver.in_trace(trace_id)

        def complete(found: list[ReceivedSpan]) -> bool:
            kinds = Counter(span.kind for span in found)
            return kinds["SERVER"] >= 1 and kinds["CLIENT"] >= len(failed) + 1

        found = await eventually(spans, complete, seconds=15)
        ports = {top.primary.url, top.spare.url}
        others = [
            span.describe()
            for span in receiver.spans
            if span.trace_id != trace_id
            and (
                span.attributes.get("turnout.request_id") == ident
                or any(f":{span.attributes.get('server.port')}/" in url for url in ports)
            )
        ]
        assert not others, f"spans of the request outside the client's trace: {others}"
        servers = [span for span in found if span.kind == "SERVER"]
        clients = [span for span in found if span.kind == "CLIENT"]
        shown = "\n".join(span.describe() for span in found)
        assert len(servers) == 1, f"expected one SERVER span in the trace:\n{shown}"
        [root] = servers
        assert root.parent_id == client_span, f"the SERVER span's parent:\n{shown}"
        assert root.name == f"POST {CHAT_PATH}", root.describe()
        assert root.attributes.get("turnout.request_id") == ident, root.describe()
        assert root.attributes.get("http.response.status_code") == 200, root.describe()
        assert root.resource.get("service.name") == "turnout", root.resource
        assert len(clients) == len(failed) + 1, f"one CLIENT span per attempt:\n{shown}"
        upstream = [(top.primary, r) for r in failed] + [(top.spare, r) for r in served]
        attempts = assert_attempt_spans(root, clients, upstream, trace_id)
        fallback_span = attempts[-1][0]
        assert all(span.attributes.get("server.port") == port for span, _, port in attempts)
        assert fallback_span.attributes.get("gen_ai.request.model") == SPARE_MODEL
        assert fallback_span.attributes.get("turnout.attempt.reason") == "fallback"
        assert "error.type" not in fallback_span.attributes, fallback_span.describe()
        first = attempts[0][0]
        assert first.attributes.get("turnout.attempt.reason") == "primary", first.describe()
        for span, _, _ in attempts[:-1]:
            assert span.attributes.get("error.type"), f"no error.type: {span.describe()}"
            assert span.attributes.get("gen_ai.request.model") == PRIMARY_MODEL
        assert_no_content(found)

        # Garbage traceparents are ignored: a new trace, the upstream told of it.
        for garbage in ("garbage-not-a-trace", f"00-{'0' * 32}-{'0' * 16}-01"):
            ident = fresh_id("untraced")
            reply = await client.chat.completions.with_raw_response.create(
                model="solo",
                messages=MESSAGES,
                extra_headers={"traceparent": garbage, "x-request-id": ident},
            )
            assert reply.parse().choices[0].message.content == REPLY

            def roots(request_id: str = ident) -> list[ReceivedSpan]:
                return [
                    span
                    for span in receiver.spans
                    if span.kind == "SERVER"
                    and span.attributes.get("turnout.request_id") == request_id
                ]

            started = await eventually(roots, lambda found: len(found) == 1, seconds=15)
            assert len(started) == 1, f"one SERVER span for {ident}: {started}"
            fresh = started[0]
            assert fresh.trace_id not in (trace_id, "0" * 32), fresh.describe()
            assert fresh.parent_id == "", f"{garbage!r} was taken as a parent: {fresh}"
            seen_trace, _ = upstream_parent(top.solo.requests[-1].headers, "after garbage")
            assert seen_trace == fresh.trace_id
        await client.close()
        everything = list(receiver.spans)
    assert_no_content(everything)
    logged = [x for x in json_lines(log.read_text()) if x.get("request_id") == ident_of(raw)]
    assert len(logged) == 1, f"one request log line for {ident_of(raw)}: {logged}"
    assert logged[0].get("trace_id") == trace_id, f"the request log line's trace_id: {logged}"


async def test_message_content_is_on_attempt_spans_only_when_asked_for(tmp_path: Path) -> None:
    capture = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
    async with OtlpReceiver() as receiver:
        async with topology(tmp_path, env={**tracing_env(receiver), **capture}) as top:
            client = top.served.sdk()
            await client.chat.completions.create(model="chat", messages=MESSAGES)
            await client.close()

            def attempt_spans() -> list[ReceivedSpan]:
                return [span for span in receiver.spans if span.kind == "CLIENT"]

            found = await eventually(attempt_spans, bool, seconds=15)
        assert len(found) == 1, f"one attempt span: {[s.describe() for s in receiver.spans]}"
        captured = found[0].attributes
        assert PROMPT_MARKER in str(captured.get("gen_ai.input.messages")), captured
        assert REPLY_MARKER in str(captured.get("gen_ai.output.messages")), captured
        assert UPSTREAM_KEY not in json.dumps(captured, default=str)


async def test_no_export_and_no_trace_context_without_otel_settings(tmp_path: Path) -> None:
    """Without any OTEL_* variable nothing is exported, not even to the default endpoint
    (localhost:4318, listened on here when it is free), and no trace context is made up."""
    async with default_endpoint_receiver() as receiver:
        async with topology(tmp_path) as top:
            client = top.served.sdk()
            for _ in range(2):
                reply = await client.chat.completions.create(model="chat", messages=MESSAGES)
                assert reply.choices[0].message.content == REPLY
            await client.close()
            carried = [r.headers.get("traceparent") for r in top.primary.requests]
        # The process has stopped: whatever an exporter buffered was flushed by now.
        assert not receiver.posts, f"exports without OTEL settings: {dict(receiver.posts)}"
        assert carried == [None, None], f"trace context made up with tracing off: {carried}"


async def test_otel_sdk_disabled_exports_nothing(tmp_path: Path) -> None:
    async with OtlpReceiver() as receiver:
        env = {**tracing_env(receiver), "OTEL_SDK_DISABLED": "true"}
        async with topology(tmp_path, env=env) as top:
            client = top.served.sdk()
            reply = await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert reply.choices[0].message.content == REPLY
            await client.close()
            await asyncio.sleep(1.0)
        assert not receiver.posts, f"exports with OTEL_SDK_DISABLED=true: {receiver.posts}"


# ---- GenAI metrics on /metrics -------------------------------------------------------------


async def test_genai_metrics_are_exposed_on_prometheus_metrics(tmp_path: Path) -> None:
    async with topology(tmp_path) as top:
        client = top.served.sdk()
        await client.chat.completions.create(model="chat", messages=MESSAGES)
        stream = await client.chat.completions.create(
            model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async for _ in stream:
            pass
        await client.close()

        async def scrape() -> str:
            status, _, text = await http("GET", top.served.url + "/metrics")
            assert status == 200, text[:300]
            return text

        def recorded(text: str) -> bool:
            return sum(samples(text, "gen_ai_client_operation_duration_seconds_count")) >= 2

        text = await eventually_async(scrape, recorded)
    durations = samples(text, "gen_ai_client_operation_duration_seconds_count")
    assert sum(durations) >= 2, (
        f"gen_ai_client_operation_duration_seconds must count the 2 requests: {durations}"
    )
    usage = samples(text, "gen_ai_client_token_usage_sum")
    assert usage and sum(usage) > 0, f"gen_ai_client_token_usage_sum: {usage}"
    first_chunk = samples(text, "gen_ai_client_operation_time_to_first_chunk_seconds_count")
    assert sum(first_chunk) >= 1, f"time to first chunk of the stream: {first_chunk}"
    assert UPSTREAM_KEY not in text and PROMPT_MARKER not in text


# ---- the status page -----------------------------------------------------------------------


async def test_status_page_is_open_without_a_master_key_and_live(tmp_path: Path) -> None:
    async with topology(tmp_path, spare_info={"id": SPARE_ID}) as top:
        url = top.served.url
        status, headers, page = await http("GET", url + "/status")
        assert status == 200, page[:300]
        assert headers.get("content-type", "").startswith("text/html"), headers
        assert "<html" in page.lower(), page[:300]
        before = await snapshot(url)
        for name in (derived_name("chat"), SPARE_ID, derived_name("solo")):
            assert objects_naming(before, name), f"{name!r} not in /status/snapshot: {before}"
        names = [
            leaf
            for path, leaf in walk(before)
            if path.rsplit(".", 1)[-1] in ("name", "deployment") and isinstance(leaf, str)
        ]
        hashed = [name for name in names if HASH_ONLY.fullmatch(name)]
        assert not hashed, f"deployments named by hash in /status/snapshot: {hashed}"

        client = top.served.sdk()
        for _ in range(3):
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        await client.close()

        async def read() -> Any:
            return await snapshot(url)

        after = await eventually_async(
            read, lambda now: bool(grew(before, now, derived_name("chat")))
        )
        assert grew(before, after, derived_name("chat")), (
            f"no request count of {derived_name('chat')} grew after 3 requests:\n"
            f"before {json.dumps(objects_naming(before, derived_name('chat')))}\n"
            f"after {json.dumps(objects_naming(after, derived_name('chat')))}"
        )
        status, kind, event = await first_event(url + "/status/events")
        assert status == 200 and kind.startswith("text/event-stream"), (status, kind)
        assert isinstance(event, dict) and objects_naming(event, derived_name("chat")), event


async def test_status_page_wants_the_master_key_when_one_is_set(tmp_path: Path) -> None:
    async with topology(tmp_path, master_key=MASTER_KEY) as top:
        url = top.served.url
        for path in ("/status", "/status/snapshot"):
            for headers in ({}, {"Authorization": f"Bearer {WRONG_KEY}"}):
                status, answer, text = await http("GET", url + path, headers=headers)
                assert status == 401, f"GET {path} {list(headers)}: expected 401, got {status}"
                assert derived_name("chat") not in text, f"{path} leaked the snapshot: {text}"
                assert MASTER_KEY not in text, f"{path} shows the master key"
                assert "x-request-id" in answer, f"{path} 401 without x-request-id: {answer}"
            status, _, text = await http("GET", url + path, headers=master_headers())
            assert status == 200, f"GET {path} with the master key: {status} {text[:300]}"
        status, _, _ = await first_event(url + "/status/events")
        assert status == 401, f"/status/events without a key: {status}"
        status, kind, event = await first_event(url + "/status/events", master_headers())
        assert status == 200 and kind.startswith("text/event-stream"), (status, kind)
        assert isinstance(event, dict), event
        by_header = await snapshot(url, {"x-api-key": MASTER_KEY})
        assert objects_naming(by_header, derived_name("chat")), by_header
