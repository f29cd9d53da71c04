"""Requests aiohttp's HTTP parser refuses, answered in OpenAI's error shape.

aiohttp answers a request it cannot parse (a bad or duplicated Content-Length, an oversized URL
or header, too many headers, a bad method) itself, before any middleware runs, with a plain-text
400 that quotes the offending bytes and an ERROR log with a traceback. The gateway's protocol
answers them here instead: the status that says what was wrong (400, 414, 431), a fixed
description that never repeats what the client sent, and a one-line DEBUG log.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Final

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)

from turnout.wire import new_request_id

#: Longest request line (method, URL, version) accepted: past it, 414.
MAX_REQUEST_LINE: Final = 4096
#: Longest header (name and value) accepted: past it, 431. It differs from the request line's
#: limit so that the parser's error, which carries only the limit, says which one was hit.
MAX_HEADER_FIELD: Final = 8190
#: Most headers accepted in one request: past it, 431.
MAX_HEADERS: Final = 128

_ENCODE = msgspec.json.Encoder().encode
#: llhttp's reasons are fixed phrases; what follows their colon quotes the input.
_FIXED_PHRASE = re.compile(r"[A-Za-z][A-Za-z0-9 '\-.]{2,80}")


def describe(status: int, exc: BaseException | None) -> tuple[int, str]:
    """The status and a description free of client input for a request aiohttp refused."""
    if status >= 500 or exc is None:
        if status == 504:
            return 504, "The request took too long to handle"
        return 500, "The gateway failed to handle the request"
    if isinstance(exc, LineTooLong):
        if str(exc.args[1]) == str(MAX_REQUEST_LINE):
            return 414, f"The request line is longer than {MAX_REQUEST_LINE} bytes"
        return 431, f"A request header is longer than {MAX_HEADER_FIELD} bytes"
    if isinstance(exc, BadHttpMethod):
        if exc.message == "Received HTTPS traffic on an HTTP port":
            return 400, "This port speaks plain HTTP, not HTTPS"
        return 400, "Malformed HTTP request: invalid method"
    if isinstance(exc, BadStatusLine):
        return 400, "Malformed HTTP request: invalid request line"
    if isinstance(exc, InvalidURLError):
        return 400, "Malformed HTTP request: invalid URL"
    if isinstance(exc, InvalidHeader):
        return 400, "Malformed HTTP request: invalid header"
    if isinstance(exc, ContentEncodingError):
        return 400, "The request body does not match its Content-Encoding"
    if isinstance(exc, TransferEncodingError):
        return 400, "Malformed HTTP request: invalid chunked body"
    text = getattr(exc, "message", "")
    if not isinstance(text, str):
        text = ""
    if text.startswith("Too many headers"):
        return 431, f"The request has more than {MAX_HEADERS} headers"
    phrase = text.split(":", 1)[0].strip()
    if _FIXED_PHRASE.fullmatch(phrase):
        return 400, f"Malformed HTTP request: {phrase}"
    return 400, "Malformed HTTP request"


def status_name(status: int) -> str:
    """A status as an error code: 414 is ``request_uri_too_long``."""
    return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")


def error_body(status: int, message: str, code: str | None) -> bytes:
    """OpenAI's error body for a failure that is not a `TurnoutError` (those map themselves in
    `TurnoutError.to_openai`): the type follows the status."""
    kind = "invalid_request_error" if status < 500 else "api_error"
    return _ENCODE({"error": {"message": message, "type": kind, "param": None, "code": code}})


def error_response(status: int, message: str) -> web.Response:
    """An OpenAI-shaped error that closes the connection (what follows cannot be trusted)."""
    response = web.Response(
        status=status,
        body=error_body(status, message, status_name(status)),
        content_type="application/json",
    )
    response.force_close()
    return response


def raw_error(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 error response, for a connection that has no request object."""
    body = error_body(status, message, status_name(status))
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-Id: {new_request_id()}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body
