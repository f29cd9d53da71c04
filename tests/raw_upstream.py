"""An upstream on 127.0.0.1 that answers every request with the reply a test sets.

The provider fakes speak their provider's wire format; real upstreams also answer with what
no fake sends: a proxy's HTML error page, a JSON shape of another server, a stream frame with a
payload that is not JSON. `raw_upstream` serves such replies byte for byte, on any path and
method, so that an adapter meets them over real HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class RawReply:
    status: int
    body: bytes
    content_type: str = "text/html"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RawUpstream:
    url: str
    #: What the next request (and every one after it) is answered with.
    reply: RawReply
    #: How many requests were answered.
    served: int = 0


@asynccontextmanager
async def raw_upstream(reply: RawReply) -> AsyncIterator[RawUpstream]:
    upstream = RawUpstream(url="", reply=reply)

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        upstream.served += 1
        current = upstream.reply
        headers = {"Content-Type": current.content_type, **current.headers}
        return web.Response(status=current.status, body=current.body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        upstream.url = f"http://{host}:{port}"
        yield upstream
    finally:
        await runner.cleanup()
