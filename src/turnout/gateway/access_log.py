"""The access log: one line per HTTP request, whatever its path and status, 4xx and 5xx too.

Written by the connection's protocol once the answer went out (`GatewayProtocol.log_access`),
so it sees every answer: a handler's, an error's, a refused ``Expect``, a request aiohttp's
parser refused. The line is the common log format's after the logger's name (the gateway's
other lines on standard error name their logger too), with the request id and the time taken:

    turnout.access 127.0.0.1 - master [02/Dec/2026:13:53:19 +0000]
    "POST /v1/chat/completions HTTP/1.1" 200 512 "OpenAI/Python 1.99.9"
    id=4f1c2a9e0b3d0000000001 ms=12.41

(one line, folded here).

The caller is named as the gateway knows it (``master``, ``key:<id>``), never by its key; the
path is logged without its query string, which a client might put a credential in. On the
event loop the line costs a log record and a queue put: it is formatted by the log writer's
thread (`turnout.observe.request_log.LogWriter`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from turnout.gateway.exchange import EXCHANGE
from turnout.gateway.request_ids import REQUEST_ID_HEADER
from turnout.observe.request_log import ACCESS_LOGGER, Line, direct_queue, info_record

_access = logging.getLogger(ACCESS_LOGGER)
#: Longest user agent written.
_AGENT_LIMIT = 200


#: The line without its time, for any handler (the writer's formatter adds the time).
_LINE = '%s - %s "%s %s HTTP/%s" %s %s "%s" id=%s ms=%.2f'


def log_access(request: Any, response: Any, seconds: float) -> None:
    """Log one answered request (`request` may be aiohttp's stand-in for an unparsable one)."""
    if not _access.isEnabledFor(logging.INFO):
        return
    exchange = request.get(EXCHANGE) if hasattr(request, "get") else None
    principal = exchange.principal if exchange is not None else None
    version = request.version
    fields = (
        request.remote or "-",
        principal.name if principal is not None else "-",
        _clean(request.method),
        _clean(request.path),
        f"{version.major}.{version.minor}",
        response.status,
        response.body_length,
        _clean(request.headers.get("user-agent") or "-")[:_AGENT_LIMIT],
        response.headers.get(REQUEST_ID_HEADER, "-"),
        seconds * 1000,
    )
    pending = direct_queue(_access)
    if pending is not None:
        pending.put_nowait(Line(ACCESS_LOGGER, access_line(fields, time.time()).encode()))
    else:
        _access.handle(info_record(ACCESS_LOGGER, _LINE, fields))


class AccessLineFormatter(logging.Formatter):
    """Formats an access record in the log writer's thread: the common log format's time
    after the caller (formatted once per second)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record.args
        if not isinstance(fields, tuple) or len(fields) != 10:
            return record.getMessage()
        return access_line(fields, record.created)


#: The second last formatted, and its text: lines come many a second.
_when: list[tuple[int, str]] = [(-1, "")]


def access_line(fields: tuple[Any, ...], created: float) -> str:
    """The line of an answered request's fields (as `log_access` gathers them), logged at
    `created` (seconds since the epoch)."""
    second = int(created)
    cached, when = _when[0]
    if second != cached:
        when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
        _when[0] = (second, when)
    return f"{ACCESS_LOGGER} {fields[0]} - {fields[1]} [{when}] " + _LINE[8:] % fields[2:]


def _clean(text: str) -> str:
    """Client-sent text, kept on one line and unable to close the quotes it sits in."""
    if text.isprintable() and '"' not in text:
        return text
    return "".join(c if c.isprintable() and c != '"' else "?" for c in text)
