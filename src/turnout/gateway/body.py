"""Reading a request's body: within the limit in force, and failing only as the client's fault.

The limit is read per request (a reload changes it at once), a declared Content-Length over it
is refused before a byte of the body is read, and a decompressed body is held to it too. A body
that does not decode as its Content-Encoding says is a 400, and a client that goes away while
sending is recorded as 499 (nginx's "client closed request"), not as the gateway's failure.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError

from turnout.errors import InvalidRequestError, PayloadTooLargeError, TurnoutError


class ClientDisconnectedError(InvalidRequestError):
    """The client closed the connection before its request was read: no one to answer."""

    status = 499
    openai_code = "client_closed_request"


def too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The request body is over the limit of {limit} bytes")


def check_declared_length(http: web.BaseRequest, limit: int) -> None:
    """Refuse a body whose declared length is over `limit`, before reading any of it."""
    length = http.content_length
    if length is not None and length > limit:
        raise too_large(limit)


async def read_body(http: web.BaseRequest, limit: int) -> bytes:
    check_declared_length(http, limit)
    body = bytearray()
    content = http.content
    try:
        while chunk := await content.readany():
            body.extend(chunk)
            if len(body) > limit:
                raise too_large(limit)
    except TurnoutError:
        raise
    except web.RequestPayloadError as exc:
        if http.transport is None:
            raise ClientDisconnectedError("The client closed the connection") from None
        if isinstance(exc.__cause__, ContentEncodingError):
            raise InvalidRequestError(
                "The request body does not decode as its Content-Encoding says"
            ) from None
        raise InvalidRequestError("The request body is malformed") from None
    except ConnectionError:
        raise ClientDisconnectedError("The client closed the connection") from None
    return bytes(body)
