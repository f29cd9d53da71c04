"""The live status page: ``/status`` (HTML), ``/status/snapshot`` (JSON), ``/status/events``
(server-sent events) and the page's static files.

Access: open when no master key is configured (as every route is then); otherwise the master key
as a bearer token (or ``x-api-key``), or the cookie that ``POST /status/login`` sets after the
page's form was sent the right key. The cookie holds an expiry and an HMAC-SHA256 of it keyed by
the master key, never the key: it opens only the status page, ends after `SESSION_SECONDS`, and
every cookie stops working when the key changes. It is ``HttpOnly`` (no script reads it),
``SameSite=Strict`` and limited to ``/status``.

``/status/events`` sends a snapshot at once and then every `EVENT_INTERVAL` seconds, at most
`MAX_WATCHERS` streams per worker at a time (more are refused with a 503), and ends when the
gateway drains or shuts down. Snapshots are built at most twice a second however many watch
(`turnout.gateway.status_board`).

The page is served with a strict Content-Security-Policy: scripts and styles only from the
gateway itself (no inline script), no framing, connections only back to the gateway. The static
files (the page's script and style, and uPlot, vendored with its licence) carry a hash of their
content in their URL and are cached for a year.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from importlib import resources
from typing import Final

import msgspec
from aiohttp import web

from turnout.errors import UnauthorizedError
from turnout.gateway import framing
from turnout.gateway.auth import presents_key, session_token, session_valid
from turnout.gateway.gateway import Gateway
from turnout.gateway.status_board import StatusBoard
from turnout.gateway.status_page import login_page, page
from turnout.gateway.status_peers import StatusPeers
from turnout.gateway.worker_health import WorkerHealth
from turnout.secrets import Secret

COOKIE: Final = "turnout_status"
SESSION_SECONDS: Final = 12 * 3600
#: What the cookie's HMAC is for, so that it stands for nothing else.
_PURPOSE: Final = "turnout-status"
EVENT_INTERVAL: Final = 1.0
MAX_WATCHERS: Final = 32
#: A login form is a few hundred bytes; anything much larger is not one.
_MAX_LOGIN_BYTES: Final = 4096

_ENCODE = msgspec.json.Encoder().encode
_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_PAGE_HEADERS: Final = {
    "content-security-policy": _CSP,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    "": "text/plain; charset=utf-8",
}


class _Assets:
    """The static files, read once from the package: name → (bytes, type, versioned URL)."""

    FILES: Final = ("status.js", "status.css", "uPlot.iife.min.js", "uPlot.min.css", "LICENSE")

    def __init__(self) -> None:
        root = resources.files("turnout.gateway") / "static"
        self.files: dict[str, tuple[bytes, str]] = {}
        self.urls: dict[str, str] = {}
        for name in self.FILES:
            folder = root / "uplot" if name.startswith("uPlot") or name == "LICENSE" else root
            body = (folder / name).read_bytes()
            suffix = name[name.rfind(".") :] if "." in name else ""
            self.files[name] = (body, _TYPES[suffix])
            digest = hashlib.sha256(body).hexdigest()[:12]
            self.urls[name] = f"/status/static/{name}?v={digest}"


class _Watchers:
    """The event streams open now, and the signal that ends them all."""

    def __init__(self) -> None:
        self.count = 0
        self.closing = asyncio.Event()


BOARD = web.AppKey("status_board", StatusBoard)
_ASSETS = web.AppKey("status_assets", _Assets)
_WATCHERS = web.AppKey("status_watchers", _Watchers)


def add_status_routes(
    app: web.Application,
    gateway: Gateway,
    workers: WorkerHealth | None = None,
    peers: StatusPeers | None = None,
) -> None:
    """Serve the status page of `gateway` from `app` (with `workers` and `peers`: the merged
    view of several worker processes)."""
    app[BOARD] = StatusBoard(gateway, workers, peers)
    app[_ASSETS] = _Assets()
    app[_WATCHERS] = watchers = _Watchers()

    async def close_streams(app: web.Application) -> None:
        watchers.closing.set()

    app.on_shutdown.append(close_streams)
    app.router.add_get("/status", _page)
    app.router.add_get("/status/snapshot", _snapshot)
    app.router.add_get("/status/events", _events)
    app.router.add_post("/status/login", _login)
    app.router.add_post("/status/logout", _logout)
    app.router.add_get("/status/static/{name}", _static)


# ---- access ------------------------------------------------------------------------------


def session_cookie(key: Secret, expires: int) -> str:
    """The cookie value for a session ending at `expires` (Unix seconds): never the key."""
    return session_token(key, _PURPOSE, expires)


def _authorized(http: web.Request) -> tuple[bool, bool]:
    """(may see the page, through the login cookie)."""
    gateway = http.app[BOARD].gateway
    key = gateway.config.server.master_key
    if key is None:
        return True, False
    if session_valid(key, _PURPOSE, http.cookies.get(COOKIE), time.time()):
        return True, True
    try:
        gateway.auth.authenticate(http.headers)
    except UnauthorizedError:
        return False, False
    return True, False


def _require(http: web.Request) -> None:
    if not _authorized(http)[0]:
        raise UnauthorizedError(
            "The status page needs the master key: `Authorization: Bearer <key>`, or sign in "
            "at /status"
        )


# ---- handlers ----------------------------------------------------------------------------


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=body,
        content_type="text/html",
        charset="utf-8",
        headers=_PAGE_HEADERS,
    )


async def _page(http: web.Request) -> web.Response:
    allowed, signed_in = _authorized(http)
    assets = http.app[_ASSETS].urls
    if not allowed:
        return _html(login_page(assets), status=401)
    snapshot = await http.app[BOARD].snapshot()
    return _html(page(snapshot, assets, signed_in=signed_in))


async def _snapshot(http: web.Request) -> web.Response:
    _require(http)
    snapshot = await http.app[BOARD].snapshot()
    return web.Response(
        body=_ENCODE(snapshot),
        content_type="application/json",
        headers={"cache-control": "no-store"},
    )


async def _login(http: web.Request) -> web.Response:
    gateway = http.app[BOARD].gateway
    assets = http.app[_ASSETS].urls
    key = gateway.config.server.master_key
    if key is None:
        return _to_page()
    if http.content_length is not None and http.content_length > _MAX_LOGIN_BYTES:
        return _html(login_page(assets, "That is not a login form."), status=413)
    form = await http.post()
    presented = form.get("key")
    if not isinstance(presented, str) or not presents_key(key, presented):
        return _html(login_page(assets, "That key is not the master key."), status=401)
    expires = int(time.time()) + SESSION_SECONDS
    response = _to_page()
    response.set_cookie(
        COOKIE,
        session_cookie(key, expires),
        max_age=SESSION_SECONDS,
        path="/status",
        httponly=True,
        samesite="Strict",
        secure=http.secure,
    )
    return response


async def _logout(http: web.Request) -> web.Response:
    response = _to_page()
    response.del_cookie(COOKIE, path="/status")
    return response


def _to_page() -> web.Response:
    """See Other: back to the page (after a form, so that reloading it posts nothing again)."""
    return web.Response(status=303, headers={"location": "/status", "cache-control": "no-store"})


async def _static(http: web.Request) -> web.Response:
    found = http.app[_ASSETS].files.get(http.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    body, content_type = found
    return web.Response(
        body=body,
        headers={
            "content-type": content_type,
            "cache-control": "public, max-age=31536000, immutable",
            "x-content-type-options": "nosniff",
        },
    )


async def _events(http: web.Request) -> web.StreamResponse:
    _require(http)
    board = http.app[BOARD]
    watchers = http.app[_WATCHERS]
    if watchers.count >= MAX_WATCHERS:
        return web.Response(
            status=503,
            body=framing.error_body(
                503, f"At most {MAX_WATCHERS} status streams at a time", "too_many_watchers"
            ),
            content_type="application/json",
            headers={"retry-after": "5"},
        )
    watchers.count += 1
    try:
        response = web.StreamResponse(
            headers={
                "content-type": "text/event-stream",
                "cache-control": "no-store",
                "x-accel-buffering": "no",
            }
        )
        await response.prepare(http)
        with contextlib.suppress(ConnectionError):
            await response.write(b"retry: 2000\n\n")
            while not (watchers.closing.is_set() or board.gateway.draining):
                snapshot = await board.snapshot()
                await response.write(b"event: snapshot\ndata: " + _ENCODE(snapshot) + b"\n\n")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(EVENT_INTERVAL):
                        await watchers.closing.wait()
            await response.write(b'event: closing\ndata: {"status": "draining"}\n\n')
            await response.write_eof()
        return response
    finally:
        watchers.count -= 1
