"""`turnout serve --workers 2`: `/status/snapshot` counts the requests both workers served,
whichever worker answers.

Real processes on a fixed free port (SO_REUSEPORT), the fake OpenAI upstream, the official SDK.
Each snapshot is read on a connection of its own, so the kernel spreads them over the workers;
reading goes on until both have answered with the totals of all requests (each worker
publishes its traffic every second).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
from pathlib import Path
from typing import Any

import openai

from fakes.fake_openai import FakeOpenAI
from litellm_shape import one_per_model
from serve_process import serving
from services import free_port

MESSAGES: Any = [{"role": "user", "content": "Hello"}]
REQUESTS = 24


def _snapshot(port: int) -> tuple[int, dict[str, Any]]:
    """(answering worker, snapshot), from one connection: `/health` names the worker."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health")
        health = json.loads(connection.getresponse().read())
        connection.request("GET", "/status/snapshot")
        snapshot = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    pid = next(worker["pid"] for worker in health["workers"] if worker["answering"])
    return pid, snapshot


async def test_the_snapshot_counts_the_requests_of_every_worker(tmp_path: Path) -> None:
    port = free_port()
    async with FakeOpenAI() as fake:
        config = tmp_path / "config.yaml"
        config.write_text(json.dumps(one_per_model(fake.url, fake.url, ids=True)))
        args = ("--config", str(config), "--port", str(port), "--workers", "2")
        async with serving(*args, listeners=2) as (process, _, _):
            try:
                async with openai.AsyncOpenAI(
                    base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", timeout=10
                ) as client:
                    # At once: a connection each, which the kernel spreads over both workers.
                    await asyncio.gather(
                        *(
                            client.chat.completions.create(model="chat", messages=MESSAGES)
                            for _ in range(REQUESTS)
                        )
                    )
                complete: dict[int, dict[str, Any]] = {}
                for _ in range(300):
                    pid, snapshot = await asyncio.to_thread(_snapshot, port)
                    if snapshot["gateway"]["1m"]["requests"] == REQUESTS:
                        complete[pid] = snapshot
                    if len(complete) == 2:
                        break
                    await asyncio.sleep(0.05)
                assert len(complete) == 2, "not both workers showed every request"
                for snapshot in complete.values():
                    assert snapshot["scope"]["workers"] == 2
                    chat = next(d for d in snapshot["deployments"] if d["name"] == "chat")
                    assert chat["totals"]["attempts"] == REQUESTS
                    assert chat["windows"]["1m"]["served"] == REQUESTS
                    assert snapshot["gateway"]["1m"]["answers"] == REQUESTS
                    assert sum(snapshot["series"]["requests"]) == REQUESTS
                # Served REQUESTS between them, and each shows all of them: whichever served
                # fewer than all shows the other's too.
                assert len(fake.requests) == REQUESTS
            finally:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 15)
