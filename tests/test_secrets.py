from __future__ import annotations

from turnout import Deployment, Secret


def test_secret_never_shows_its_value() -> None:
    secret = Secret("sk-live-123456")
    assert "sk-live" not in repr(secret)
    assert "sk-live" not in str(secret)
    assert "sk-live" not in f"{secret}"
    assert secret.reveal() == "sk-live-123456"


def test_deployment_repr_hides_its_key() -> None:
    deployment = Deployment(model_name="g", model="m", api_key=Secret("sk-live-123456"))
    assert "sk-live" not in repr(deployment)


def test_fingerprint_tells_secrets_apart_without_revealing_them() -> None:
    a, b = Secret("key-a"), Secret("key-b")
    assert a.fingerprint() != b.fingerprint()
    assert "key" not in a.fingerprint()
    assert a == Secret("key-a")
    assert a != b
