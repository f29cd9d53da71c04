from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turnout import Deployment, Secret
from turnout.errors import AttemptRecord, FailureKind, ServerError
from turnout.secrets import Redactor, masked, names_secret


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


# ---- Redactor --------------------------------------------------------------------------------

MASK = "**********"


def test_configured_secrets_of_no_known_shape_are_removed() -> None:
    redactor = Redactor([Secret("q7LmX2vR9tKpW4zN"), "zX81mQ0pLr5sTuV3", None])
    text = "keys q7LmX2vR9tKpW4zN and zX81mQ0pLr5sTuV3, glued:xq7LmX2vR9tKpW4zNy"
    assert redactor.redact(text) == f"keys {MASK} and {MASK}, glued:x{MASK}y"


def test_a_secret_containing_another_is_removed_whole() -> None:
    redactor = Redactor(["abcdefgh", "abcdefgh-ijklmnop"])
    assert redactor.redact("k=abcdefgh-ijklmnop!") == f"k={MASK}!"


def test_overlapping_secrets_are_both_removed_whole() -> None:
    redactor = Redactor(["abcdefgh12", "12xyzxyzxy"])
    assert redactor.redact("<abcdefgh12xyzxyzxy> and 12xyzxyzxy") == f"<{MASK}> and {MASK}"


def test_short_secrets_are_removed_only_as_whole_tokens() -> None:
    redactor = Redactor(["x9Kq", "a", "ab", "abc"])
    assert redactor.redact("the key x9Kq leaked") == f"the key {MASK} leaked"
    # Inside a longer word it is not a key: the word stays.
    assert redactor.redact("x9Kqrs and rx9Kq") == "x9Kqrs and rx9Kq"
    # One to three characters cannot be told from text: nothing is blanked out for them.
    text = "a cab abc ran a bit"
    assert redactor.redact(text) == text


def test_encoded_forms_of_a_secret_are_removed() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    redactor = Redactor([secret])
    percent = "wJalrXUtnFEMI%2FK7MDENG%2BbPxRfiCYEXAMPLEKEY"
    escaped = "wJalrXUtnFEMI\\/K7MDENG+bPxRfiCYEXAMPLEKEY"
    assert redactor.redact(f"{secret} {percent} {escaped}") == f"{MASK} {MASK} {MASK}"


def test_regex_characters_in_a_secret_match_literally() -> None:
    redactor = Redactor(["a.b*c+d?(e)"])
    assert redactor.redact("x a.b*c+d?(e) axbbbcd") == f"x {MASK} axbbbcd"


@pytest.mark.parametrize(
    "key",
    [
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
        "sk-ant-api03-Xy7Qw3Er5Ty9Ui1Op2As4Df6Gh8Jk0Lz",
        "sk-abc*****************wxyz",
        "gsk_Ab3dEf6hIj9kLm2nOp5q",
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAIOSFODNN7EXAMPLE",
        "AIzaSyD3f8Kq2Lm9Np4Rs7Tv1Wx6Yz0Ab5Cd3Ef",
        "ABSKQmVkcm9ja0FQSUtleS1hYmNkZWZnaGlq",
    ],
)
def test_keys_of_known_shapes_are_removed_unconfigured(key: str) -> None:
    assert Redactor().redact(f"Incorrect API key provided: {key}.") == (
        f"Incorrect API key provided: {MASK}."
    )


def test_words_that_merely_contain_a_prefix_stay() -> None:
    text = "task-manager desk-lamp husk_of AKIA"
    assert Redactor().redact(text) == text


@pytest.mark.parametrize(
    ("echo", "kept"),
    [
        ("Authorization: Bearer q7LmX2vR9tKp", "Authorization: Bearer "),
        ("authorization: bearer q7LmX2vR9tKp", "authorization: bearer "),
        ('{"x-api-key": "k1"}', '{"x-api-key": "'),
        ("'api-key': 'k2'", "'api-key': '"),
        ("x-goog-api-key=k3", "x-goog-api-key="),
        ("X-Amz-Security-Token: k4", "X-Amz-Security-Token: "),
        ("GET /v1beta/models/m?key=k5", "GET /v1beta/models/m?key="),
    ],
)
def test_echoed_credential_headers_lose_their_values(echo: str, kept: str) -> None:
    assert Redactor().redact(echo).startswith(kept + MASK)
    assert "k" not in Redactor().redact(echo)[len(kept) :].replace(MASK, "").strip("\"'}")


def test_prose_about_keys_is_left_alone() -> None:
    text = "Invalid key: must be a string; the x-api-key header is required"
    assert Redactor().redact(text) == text


def test_a_bearer_token_of_any_shape_is_removed() -> None:
    assert Redactor().redact("sent Bearer 9f8e7d6c5b4a") == f"sent Bearer {MASK}"


def test_scrub_redacts_an_errors_message_and_param_in_place() -> None:
    error = ServerError("upstream said key=zX81mQ0pLr5sTuV3 is bad", param="zX81mQ0pLr5sTuV3")
    redactor = Redactor(["zX81mQ0pLr5sTuV3"])
    assert redactor.scrub(error) is error
    assert error.message == f"upstream said key={MASK} is bad"
    assert str(error) == error.message
    assert error.param == MASK


@pytest.mark.parametrize("cut", range(20, 40))
def test_scrub_shortens_only_after_redacting(cut: int) -> None:
    """Whatever the cut, a key it would split is gone before it: a key's first half is
    nothing any redactor can recognise."""
    secret = "9f3c1a7be2d84c06a5f1e8b23d7c4e91"
    copies = " ".join([secret] * 4)
    error = ServerError(f"azure: <html>{copies}</html>", param=f"p {copies}")
    Redactor([secret]).scrub(error, limit=cut)
    for shown in (error.message, error.param or "", str(error)):
        assert len(shown) <= cut and shown.endswith("…")
        assert not any(secret[start : start + 6] in shown for start in range(len(secret) - 5))


def test_scrub_leaves_a_message_within_its_limit_whole() -> None:
    error = ServerError("short enough")
    assert Redactor().scrub(error, limit=12).message == "short enough"


def test_error_body_redacts_the_attempt_summary_too() -> None:
    secret = "zX81mQ0pLr5sTuV3"
    error = ServerError("all failed")
    error.attempts = (
        AttemptRecord("d1", "chat", 0.0, 0.1, FailureKind.SERVER_ERROR, 500, f"echo {secret}"),
    )
    body = Redactor([secret]).error_body(error)
    assert secret not in json.dumps(body)
    assert body["error"]["message"].startswith("all failed [1 attempt: d1 (chat)")
    # The error itself is unchanged: the body is a redacted copy.
    assert secret in error.to_openai()["error"]["message"]


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(st.text(min_size=8, max_size=40), min_size=1, max_size=5),
    pieces=st.lists(st.text(max_size=30), min_size=1, max_size=6),
    data=st.data(),
)
def test_no_configured_secret_survives_anywhere_in_any_text(
    secrets: list[str], pieces: list[str], data: st.DataObject
) -> None:
    # Secrets dropped between arbitrary text, glued to it, overlapping each other.
    chosen = [data.draw(st.sampled_from(secrets)) for _ in pieces]
    text = "".join(piece + secret for piece, secret in zip(pieces, chosen, strict=True))
    redacted = Redactor(secrets).redact(text)
    for secret in secrets:
        assert secret not in redacted


def test_masked_hides_values_under_credential_names_at_any_depth() -> None:
    value = {
        "Authorization": "Bearer abc",
        "max_tokens": 5,
        "nested": [{"client_secret": "s", "name": "kept"}],
    }
    assert masked(value) == {
        "Authorization": MASK,
        "max_tokens": 5,
        "nested": [{"client_secret": MASK, "name": "kept"}],
    }
    assert names_secret("x-api-key") and not names_secret("max_completion_tokens")
