"""Secret values that never show themselves by accident, and the redaction of upstream text.

API keys travel inside config objects that get logged, printed in tracebacks and put in error
messages. `Secret` makes the safe thing the default: its `repr` and `str` are redacted, it is
excluded from equality-by-value leaks, and only `reveal()` (called by provider adapters when they
build the upstream request) returns the value.

Upstreams echo credentials back in their errors (a proxy quoting the request's headers, a key
"not valid" quoted whole). `Redactor` removes every configured secret and anything shaped like a
credential from such text; it runs where upstream text enters turnout's errors (and shortens
it there, after redacting it whole) and once more where an error leaves the gateway.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

if TYPE_CHECKING:
    from turnout.errors import TurnoutError

#: What stands in for a secret wherever one would show.
REDACTED: Final = "**********"
_REDACTED: Final = REDACTED

#: A setting, parameter or header whose name says its (plain text) value is a credential...
_SECRET_NAME = re.compile(
    r"key|secret|token|password|passwd|credential|authorization|signature|cookie", re.IGNORECASE
)
#: ...unless the name holds counts or limits, never credentials.
_NOT_SECRET_NAME = re.compile(r"tokens|token_count|keep", re.IGNORECASE)


def names_secret(name: str) -> bool:
    """Whether a setting, parameter or header called `name` holds a credential
    (``Authorization``, ``x-api-key``, ``client_secret``; not ``max_tokens``)."""
    return _SECRET_NAME.search(name) is not None and _NOT_SECRET_NAME.search(name) is None


#: Deepest nesting `masked` looks into (configs are shallow; this only bounds a cycle).
_MASK_DEPTH = 8


def masked(value: Any, depth: int = 0) -> Any:
    """`value` (mappings and lists of plain data) with every item under a credential's name
    replaced by `REDACTED`: what a repr of settings may show."""
    if depth > _MASK_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            name: REDACTED
            if isinstance(name, str) and names_secret(name)
            else masked(item, depth + 1)
            for name, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(item, depth + 1) for item in value]
    return value


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
#: API keys (``AIza``) and bearer tokens. Each comes with the lowercase text that must be in a
#: message for it to match at all.
_KEY_SHAPES = (
    (("sk-",), r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-*]{6,}"),
    (("gsk_",), r"(?<![A-Za-z0-9])gsk_[A-Za-z0-9]{8,}"),
    (("akia", "asia"), r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{12,}"),
    (("absk",), r"(?<![A-Za-z0-9])ABSK[A-Za-z0-9+/=]{20,}"),
    (("aiza",), r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_\-]{20,}"),
    (("bearer",), r"(?P<scheme>(?i:\bbearer\s+))[A-Za-z0-9._\-+/=~]{8,}"),
)
#: A credential header or query parameter echoed with its value (``x-api-key: ...``,
#: ``"authorization": "Bearer ..."``, ``?key=...``): the name is kept, the value goes.
_ECHO_NAMES = (
    r"x-api-key|api-key|api_key|x-goog-api-key|authorization|proxy-authorization"
    r"|x-amz-security-token|ocp-apim-subscription-key|access_token"
)
#: Names that are credentials only as a URL's query parameter (``?key=``), not in prose.
_QUERY_NAMES = r"key|token"
#: The texts one of which a message holds when `_ECHO` can match.
_ECHO_TRIGGERS = (
    "api-key",
    "api_key",
    "authorization",
    "security-token",
    "subscription-key",
    "access_token",
    "?key",
    "&key",
    "?token",
    "&token",
)
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


class _Known:
    """One configured secret: the forms it may take in text, and the pattern that removes them.

    A plain substring test finds out whether the secret is there at all (fast, in C, for any
    number of secrets); only then does its pattern run.
    """

    __slots__ = ("forms", "pattern")

    def __init__(self, value: str) -> None:
        forms = {value, quote(value, safe=""), value.replace("/", "\\/")}
        # Longest first: the pattern prefers a whole form to a shorter one it begins with.
        self.forms = tuple(sorted(forms, key=len, reverse=True))
        alternatives = "|".join(re.escape(form) for form in self.forms)
        if len(value) < _ANYWHERE:
            alternatives = rf"(?<![{_TOKEN}])(?:{alternatives})(?![{_TOKEN}])"
        self.pattern = re.compile(alternatives)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where the secret is in `text` (none, cheaply, when it is not there at all)."""
        for form in self.forms:
            if form in text:
                return [match.span() for match in self.pattern.finditer(text)]
        return []


class Redactor:
    """Removes every configured secret, and anything shaped like a credential, from text.

    Built once per configuration from the secrets of every deployment (and the gateway's own),
    so that an upstream that echoes another deployment's key, or a key of no known shape, is
    caught too. The work is precompiled: a substring test per secret (a pattern runs only for
    a secret present) and per shape, on error text alone: an answer that succeeds never meets
    it. Secrets of eight characters or more are removed
    wherever they appear, shorter ones (four to seven) only as a whole token, and keys of one to
    three characters are left to the shape rules (see `_SHORTEST`). A secret is also matched
    percent-encoded and with JSON's escaped ``\\/``, the forms an echoed URL or nested JSON
    gives it; text is redacted after it was decoded, so other escapes are already undone.
    """

    __slots__ = ("_known",)

    def __init__(self, secrets: Iterable[Secret | str | None] = ()) -> None:
        values = {
            value
            for value in (s.reveal() if isinstance(s, Secret) else s for s in secrets)
            if value and len(value) >= _SHORTEST
        }
        # Longest first, so that a secret containing another is removed whole.
        ordered = sorted(values, key=lambda value: (-len(value), value))
        self._known = tuple(_Known(value) for value in ordered)

    def redact(self, text: str) -> str:
        """`text` with every secret and credential-shaped run replaced by asterisks."""
        spans = [span for known in self._known for span in known.spans(text)]
        if spans:
            text = _masked(text, spans)
        # Redaction only inserts asterisks, so a trigger absent before is absent after.
        lowered = text.lower()
        for triggers, pattern in _RULES:
            if any(trigger in lowered for trigger in triggers):
                text = pattern.sub(_replace, text)
        return text

    def scrub(self, error: TurnoutError, *, limit: int | None = None) -> TurnoutError:
        """`error` itself, its message and param redacted, then cut to `limit` characters:
        done where upstream text enters an error, so that whatever records, logs or summarises
        it later sees only clean text.

        The cut comes after redaction, never before: a key that a cut splits leaves its first
        characters behind, and no redactor recognises a key from its first half.
        """
        error.message = _shortened(self.redact(error.message), limit)
        error.args = (error.message,)
        if error.param is not None:
            error.param = _shortened(self.redact(error.param), limit)
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


#: The shape and echo rules, compiled, each run only when its trigger text is present (one
#: combined expression would try every rule at every position, several times slower).
_RULES = tuple(
    (triggers, re.compile(pattern)) for triggers, pattern in (*_KEY_SHAPES, (_ECHO_TRIGGERS, _ECHO))
)


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the union of `spans` masked: two secrets that overlap in the text (the end
    of one the start of another) are both removed whole, not one of them and a remnant."""
    spans.sort()
    parts: list[str] = []
    done = 0
    start, end = spans[0]
    for next_start, next_end in spans[1:]:
        if next_start <= end:
            end = max(end, next_end)
            continue
        parts += [text[done:start], _REDACTED]
        done, start, end = end, next_start, next_end
    parts += [text[done:start], _REDACTED, text[end:]]
    return "".join(parts)


def _shortened(text: str, limit: int | None) -> str:
    """`text`, or its first `limit` characters ending in an ellipsis when it is longer."""
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _replace(match: re.Match[str]) -> str:
    """The mask, after whatever names the credential (a header's name, ``Bearer``): kept, so
    that the message still says what was there."""
    groups = match.groupdict()
    kept = groups.get("name") or groups.get("scheme")
    return _REDACTED if kept is None else kept + _REDACTED


#: Shape and echo rules only: for text whose configuration is unknown.
SHAPES_ONLY = Redactor()
