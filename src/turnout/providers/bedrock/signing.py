"""How a Bedrock call proves who sends it: an API key as a bearer token, or AWS Signature V4.

Bedrock API keys go in ``Authorization: Bearer <key>``, as AWS documents for direct HTTP calls
(the same value the SDKs read from ``AWS_BEARER_TOKEN_BEDROCK``). Without one, the call is
signed with SigV4 for service ``bedrock`` in the deployment's region, with the access key,
secret and optional session token of the deployment's settings or the standard environment
variables.

The signature is computed with botocore's own SigV4 pieces (canonical request, string to sign,
signing key), so turnout does not carry a second implementation of the algorithm. Only the
moment of signing is ours: ``SigV4Auth.add_auth`` reads the system clock itself, so instead of
calling it the signer sets the request's timestamp from turnout's injected clock and then runs
the same public steps ``add_auth`` runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from turnout.config.providers import BedrockSettings
from turnout.secrets import Secret

#: The SigV4 signing name of bedrock-runtime (its endpoint prefix differs: see the API model).
SERVICE = "bedrock"


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """A static AWS identity; `repr` shows the access key id only (it is not a secret)."""

    access_key: str
    secret_key: Secret
    session_token: Secret | None = None

    def __repr__(self) -> str:
        return f"AwsCredentials(access_key={self.access_key!r})"


def credentials_from(environ: Mapping[str, str]) -> AwsCredentials | None:
    """The standard environment variables' keys; None when they hold no pair."""
    key = environ.get("AWS_ACCESS_KEY_ID") or None
    secret = environ.get("AWS_SECRET_ACCESS_KEY") or None
    token = environ.get("AWS_SESSION_TOKEN") or None
    if key is None or secret is None:
        return None
    return AwsCredentials(key, Secret(secret), Secret(token) if token else None)


def own_credentials(settings: BedrockSettings) -> AwsCredentials | None:
    """The deployment's own keys (both or neither: loading refuses half a pair)."""
    key, secret = settings.aws_access_key_id, settings.aws_secret_access_key
    if not key or not secret:
        return None
    token = settings.aws_session_token
    return AwsCredentials(key.reveal(), secret, token or None)


def sign(
    method: str,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    credentials: AwsCredentials,
    region: str,
    when: float,
) -> dict[str, str]:
    """`headers` plus ``x-amz-date``, the session token if any, and the SigV4 authorization.

    Every header given is signed, and ``host`` is added (derived from `url` exactly as HTTP
    clients write it), so the caller must send all of them unchanged.
    """
    stamp = datetime.fromtimestamp(when, UTC).strftime(SIGV4_TIMESTAMP)
    signed = {name.lower(): value for name, value in headers.items()}
    signed["x-amz-date"] = stamp
    token = credentials.session_token.reveal() if credentials.session_token else None
    if token:
        signed["x-amz-security-token"] = token
    signer = SigV4Auth(
        Credentials(credentials.access_key, credentials.secret_key.reveal(), token),
        SERVICE,
        region,
    )
    request = AWSRequest(method=method, url=url, data=body, headers=signed)
    request.context["timestamp"] = stamp
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    names = signer.signed_headers(signer.headers_to_sign(request))
    signed["host"] = signer.headers_to_sign(request)["host"]
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, "
        f"SignedHeaders={names}, Signature={signature}"
    )
    return signed
