"""Secret values that never show themselves by accident, and the redaction of upstream text.

API keys travel inside config objects that get logged, printed in tracebacks and put in error
messages. `Secret` makes the safe thing the default: its `repr` and `str` are redacted, it is
excluded from equality-by-value leaks, and only `reveal()` (called by provider adapters when they
build the upstream request) returns the value.

Upstreams echo credentials back in their errors (a proxy quoting the request's headers, a key
"not valid" quoted whole). `Redactor` removes every configured secret and anything shaped like a
credential from such text; it runs where upstream text enters turnout's errors and once more
where an error leaves the gateway.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

if TYPE_CHECKING:
    from turnout.errors import TurnoutError

_REDACTED: Final = "**********"


class Secret:
    """A string whose repr and str are redacted; `reveal()` returns the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: for building upstream requests, nothing else."""
        return self._value

    def fingerprint(self) -> str:
        """A short one-way digest: tells two secrets apart without exposing either."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"Secret('{_REDACTED}')"

    def __str__(self) -> str:
        return _REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


#: Shapes of credentials that upstream error messages echo back, wherever they came from:
#: OpenAI (``sk-``, ``sk-proj-``; a masked ``sk-abc*****wxyz`` too), Anthropic (``sk-ant-``),
#: Groq (``gsk_``), AWS access key ids (``AKIA``/``ASIA``), Bedrock API keys (``ABSK``), Google
#: API keys (``AIza``) and bearer tokens.
_KEY_SHAPES = (
    r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-*]{6,}",
    r"(?<![A-Za-z0-9])gsk_[A-Za-z0-9]{8,}",
    r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{12,}",
    r"(?<![A-Za-z0-9])ABSK[A-Za-z0-9+/=]{20,}",
    r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_\-]{20,}",
    r"(?P<scheme>(?i:\bbearer\s+))[A-Za-z0-9._\-+/=~]{8,}",
)
#: A credential header or query parameter echoed with its value (``x-api-key: ...``,
#: ``"authorization": "Bearer ..."``, ``?key=...``): the name is kept, the value goes.
_ECHO_NAMES = (
    r"x-api-key|api-key|api_key|x-goog-api-key|authorization|proxy-authorization"
    r"|x-amz-security-token|ocp-apim-subscription-key|access_token"
)
#: Names that are credentials only as a URL's query parameter (``?key=``), not in prose.
_QUERY_NAMES = r"key|token"
_ECHO = (
    rf"(?P<name>(?i:(?<![A-Za-z0-9_\-])(?:{_ECHO_NAMES})|(?<=[?&])(?:{_QUERY_NAMES}))"
    r"[\"']?\s*[:=]\s*[\"']?(?i:(?:bearer|basic|token)\s+)?)(?P<value>[^\s\"',;&}\]]+)"
)
#: Secrets this long are removed wherever they appear, even inside a longer word.
_ANYWHERE = 8
#: Shorter secrets (down to this length) are removed only as a whole token; shorter still are
#: not matched at all: a key of one to three characters cannot be told apart from ordinary
#: text, and removing every "a" would make messages unreadable without protecting anything.
_SHORTEST = 4
#: Characters that, next to a short secret, make it part of a longer token.
_TOKEN = r"A-Za-z0-9_\-"


def _secret_pattern(value: str) -> str | None:
    if len(value) < _SHORTEST:
        return None
    forms = {value, quote(value, safe=""), value.replace("/", "\\/")}
    pattern = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
    if len(value) < _ANYWHERE:
        return rf"(?<![{_TOKEN}])(?:{pattern})(?![{_TOKEN}])"
    return pattern


class Redactor:
    """Removes every configured secret, and anything shaped like a credential, from text.

    Built once per configuration from the secrets of every deployment (and the gateway's own),
    so that an upstream that echoes another deployment's key, or a key of no known shape, is
    caught too. The work is one precompiled regular expression, run only on error text: an
    answer that succeeds never meets it. Secrets of eight characters or more are removed
    wherever they appear, shorter ones (four to seven) only as a whole token, and keys of one to
    three characters are left to the shape rules (see `_SHORTEST`). A secret is also matched
    percent-encoded and with JSON's escaped ``\\/``, the forms an echoed URL or nested JSON
    gives it; text is redacted after it was decoded, so other escapes are already undone.
    """

    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[Secret | str | None] = ()) -> None:
        values = {
            value
            for value in (s.reveal() if isinstance(s, Secret) else s for s in secrets)
            if value
        }
        # Longest first, so that a secret containing another is removed whole.
        ordered = sorted(values, key=lambda value: (-len(value), value))
        own = [found for found in map(_secret_pattern, ordered) if found is not None]
        self._pattern = re.compile("|".join([*own, *_KEY_SHAPES, _ECHO]))

    def redact(self, text: str) -> str:
        """`text` with every secret and credential-shaped run replaced by asterisks."""
        return self._pattern.sub(_replace, text)

    def scrub(self, error: TurnoutError) -> TurnoutError:
        """`error` itself, its message and param redacted: done where upstream text enters an
        error, so that whatever records, logs or summarises it later sees only clean text."""
        error.message = self.redact(error.message)
        error.args = (error.message,)
        if error.param is not None:
            error.param = self.redact(error.param)
        return error

    def error_body(self, error: TurnoutError) -> dict[str, Any]:
        """`error` as OpenAI's error body, redacted: the last pass before a client sees it (the
        attempt summary included), whatever path the error took."""
        body = error.to_openai()
        fields = body["error"]
        fields["message"] = self.redact(fields["message"])
        if isinstance(fields["param"], str):
            fields["param"] = self.redact(fields["param"])
        return body


def _replace(match: re.Match[str]) -> str:
    """The mask, after whatever names the credential (a header's name, ``Bearer``): kept, so
    that the message still says what was there."""
    kept = match.group("name") or match.group("scheme")
    return _REDACTED if kept is None else kept + _REDACTED


#: Shape and echo rules only: for text whose configuration is unknown.
SHAPES_ONLY = Redactor()


def redact(text: str, *secrets: Secret | None) -> str:
    """`text` with the given secrets, and anything shaped like an API key, blotted out (builds
    a `Redactor` per call: for one-off use; hold a `Redactor` for anything repeated)."""
    return Redactor(secrets).redact(text) if any(secrets) else SHAPES_ONLY.redact(text)
