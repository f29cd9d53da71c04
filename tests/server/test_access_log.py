"""The access log: one line per HTTP request, any path and status, with its id and duration."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from raw_http import connection, read_response

from gateway_harness import RunningGateway, gateway_config, simulated
from turnout.gateway.access_log import AccessLineFormatter
from turnout.gateway.app import create_app
from turnout.gateway.gateway import Gateway
from turnout.gateway.site import GatewaySite
from turnout.observe.request_log import ACCESS_LOGGER

MASTER = "sk-access-master-0a1b2c3d"
LINE = re.compile(
    r"^turnout\.access 127\.0\.0\.1 - (\S+) \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "
    r'"(\w+) (\S+) HTTP/1\.[01]" (\d{3}) (\d+) "([^"]*)" id=(\S+) ms=(\d+\.\d\d)$'
)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(AccessLineFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@asynccontextmanager
async def logged_gateway(*, access_log: bool = True) -> AsyncIterator[tuple[RunningGateway, Lines]]:
    gateway = Gateway(gateway_config(simulated("sim-1"), master_key=MASTER))
    lines = Lines()
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    runner = web.AppRunner(create_app(gateway), access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = GatewaySite(runner, "127.0.0.1", 0, lambda: gateway.limits, access_log=access_log)
    await site.start()
    try:
        yield RunningGateway(f"http://127.0.0.1:{runner.addresses[0][1]}", gateway, site), lines
    finally:
        await runner.cleanup()
        await gateway.close()
        logger.removeHandler(lines)


async def test_every_request_gets_a_line_whatever_its_path_and_status() -> None:
    async with logged_gateway() as (gw, lines), aiohttp.ClientSession() as session:
        master = {"authorization": f"Bearer {MASTER}"}
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        answered = []
        for method, path, headers, payload in [
            ("POST", "/v1/chat/completions", master, body),
            ("POST", "/v1/chat/completions", {}, body),
            ("POST", "/v1/chat/completions", master, {**body, "model": "nope"}),
            ("GET", "/nowhere?api_key=sk-in-a-query", {}, None),
            ("GET", "/health", {**master, "x-request-id": "probe-9"}, None),
            ("GET", "/key/list", master, None),
        ]:
            async with session.request(
                method, gw.url + path, headers={**headers, "user-agent": "tests"}, json=payload
            ) as response:
                await response.read()
                answered.append((response.status, response.headers["x-request-id"]))
        async with connection(gw) as (reader, writer):
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            status, headers, _ = await read_response(reader)
            answered.append((status, headers["x-request-id"]))
    assert [status for status, _ in answered] == [200, 401, 404, 404, 200, 400, 400]
    parsed = [LINE.match(line) for line in lines.lines]
    assert all(parsed), [line for line, match in zip(lines.lines, parsed, strict=True) if not match]
    fields = [match.groups() for match in parsed if match]
    assert [(int(f[3]), f[6]) for f in fields] == answered
    assert fields[0][:3] == ("master", "POST", "/v1/chat/completions")
    assert fields[1][0] == "-"  # refused: no caller known
    assert fields[3][2] == "/nowhere"  # never the query string
    assert fields[4][6] == "probe-9"
    assert fields[0][5] == "tests"
    assert all(MASTER not in line and "sk-in-a-query" not in line for line in lines.lines)


async def test_no_line_when_the_access_log_is_off() -> None:
    async with (
        logged_gateway(access_log=False) as (gw, lines),
        aiohttp.ClientSession() as session,
        session.get(f"{gw.url}/health/live") as response,
    ):
        assert response.status == 200
    assert lines.lines == []
