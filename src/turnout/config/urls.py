"""Endpoint URLs in a config: refused at load when they could only fail on every call."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from turnout.errors import ConfigError


def check_base_url(url: str, path: str = "base_url") -> None:
    """Refuse a base URL that could only fail on every call, naming the fix.

    Adapters append their paths (``/chat/completions``, ``/v1/messages``, ...) to the base URL
    and send the result with aiohttp, so a URL without an http(s) scheme or a host, or with a
    query or fragment the paths would land in, fails each request. Credentials in the URL
    (``user:password@``) clash with the Authorization header the adapters set: aiohttp refuses
    the combination with a ValueError on every call. The URL is shown with its userinfo and
    query masked, as they may hold secrets.
    """
    scheme, authority, tail = _url_parts(url)
    shown = repr(_masked(scheme, authority, tail))
    if "@" in authority:
        raise ConfigError(
            f"{shown} carries credentials (user:password@), which turnout does not send: "
            "give the key as api_key, or send your own Authorization header through "
            "params.extra_headers",
            path=path,
        )
    if not scheme:
        raise ConfigError(f"{shown} has no scheme: write https://... or http://...", path=path)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"{shown} is not a valid URL (its port or IPv6 address is malformed)",
            path=path,
        ) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigError(
            f"{shown}: scheme {parts.scheme!r} is not supported: use https:// or http://",
            path=path,
        )
    if not parts.hostname:
        raise ConfigError(f"{shown} has no host", path=path)
    if port == 0:
        raise ConfigError(f"{shown}: port 0 cannot be connected to", path=path)
    if "?" in url or "#" in url:
        raise ConfigError(
            f"{shown} has a query or fragment, which would end up after the API paths turnout "
            "appends: give the endpoint without it",
            path=path,
        )


def _url_parts(url: str) -> tuple[str, str, str]:
    """(``scheme://`` or "", the authority, the rest from the first ``/``, ``?`` or ``#``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return scheme + sep, rest[:cut], rest[cut:]


def _masked(scheme: str, authority: str, tail: str) -> str:
    """The URL with anything up to its last ``@`` and anything after ``?`` or ``#`` as ``***``.

    Up to the last ``@`` of the whole URL, not of the authority only: a password holding an
    unencoded ``/`` would otherwise show in part.
    """
    rest = authority + tail
    cut = min((i for i in (rest.find(c) for c in "?#") if i >= 0), default=len(rest))
    before, after = rest[:cut], rest[cut:]
    if "@" in before:
        before = "***@" + before.rpartition("@")[2]
    if after:
        after = after[0] + "***"
    return f"{scheme}{before}{after}"


@functools.lru_cache(maxsize=1024)
def server_of(url: str | None) -> tuple[str | None, int | None]:
    """The host and port a base URL reaches (the scheme's default port when it names none),
    for traces and metrics; (None, None) without a URL. Cached: a config has few URLs, and an
    attempt asks for its deployment's every time."""
    if not url:
        return None, None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None, None
    if port is None:
        port = 443 if parts.scheme.lower() == "https" else 80
    return parts.hostname, port
