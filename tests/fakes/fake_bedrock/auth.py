"""Checking a request's credentials as Bedrock would: an API key, or a SigV4 signature.

A bearer token must be the fake's API key. A SigV4 ``Authorization`` header must have AWS's
shape (``AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/bedrock/aws4_request,
SignedHeaders=..., Signature=<hex>``), name the fake's access key, region and service ``bedrock``,
sign ``host`` and ``x-amz-date``, and carry the signature botocore computes for the request as
received with the fake's secret. Failures answer what AWS answers: 403 with
``MissingAuthenticationTokenException``, ``UnrecognizedClientException`` or
``InvalidSignatureException``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)


class AuthFailure(Exception):
    """A refused request: AWS's exception name and message (always a 403)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """The one identity the fake accepts for SigV4."""

    access_key: str
    secret_key: str
    region: str


def check(
    authorization: str | None,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    api_key: str | None,
    keys: SigningKeys | None,
) -> str:
    """How the request authenticated ("bearer" or "sigv4"); raises `AuthFailure` otherwise.

    `url` must hold the path exactly as received; `headers` are lowercased.
    """
    if not authorization:
        raise AuthFailure("MissingAuthenticationTokenException", "Missing Authentication Token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer":
        if api_key is not None and hmac.compare_digest(token.strip(), api_key):
            return "bearer"
        raise AuthFailure(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    match = _AUTHORIZATION.fullmatch(authorization)
    if match is None or keys is None:
        raise AuthFailure("IncompleteSignatureException", "Authorization header is malformed.")
    if match["key"] != keys.access_key:
        raise AuthFailure(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if match["service"] != "bedrock":
        raise AuthFailure(
            "InvalidSignatureException",
            "Credential should be scoped to correct service: 'bedrock'.",
        )
    if match["region"] != keys.region:
        raise AuthFailure(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{match['region']}'.",
        )
    signed = match["signed"].split(";")
    stamp = headers.get("x-amz-date", "")
    if "host" not in signed or "x-amz-date" not in signed or stamp[:8] != match["date"]:
        raise AuthFailure("InvalidSignatureException", _MISMATCH)
    expected = _signature(method, url, headers, body, signed, keys, stamp)
    if not hmac.compare_digest(expected, match["signature"]):
        raise AuthFailure("InvalidSignatureException", _MISMATCH)
    return "sigv4"


def _signature(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    signed: list[str],
    keys: SigningKeys,
    stamp: str,
) -> str:
    """botocore's signature over the signed headers as received."""
    token = headers.get("x-amz-security-token")
    signer = SigV4Auth(Credentials(keys.access_key, keys.secret_key, token), "bedrock", keys.region)
    chosen = {name: headers.get(name, "") for name in signed}
    request = AWSRequest(method=method, url=url, data=body, headers=chosen)
    request.context["timestamp"] = stamp
    canonical = signer.canonical_request(request)
    result: str = signer.signature(signer.string_to_sign(request, canonical), request)
    return result
