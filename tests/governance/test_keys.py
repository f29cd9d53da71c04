"""Virtual keys: their shape, their randomness, and the digest they are stored under."""

from __future__ import annotations

import base64
import hashlib
import hmac

from turnout.governance.keys import KeyHasher, abbreviate, generate_key
from turnout.secrets import Secret


def test_a_key_is_sk_and_at_least_128_random_bits_url_safe() -> None:
    keys = {generate_key() for _ in range(1000)}
    assert len(keys) == 1000
    for key in keys:
        assert key.startswith("sk-")
        body = key[3:]
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        assert len(raw) * 8 >= 128
        assert set(body) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_the_digest_is_litellms_unsalted_sha256_without_a_pepper() -> None:
    key = "sk-tXL0wt5-lOOVK9sfY2UacA"
    assert KeyHasher().digest(key) == hashlib.sha256(key.encode()).hexdigest()
    assert not KeyHasher().peppered


def test_with_a_pepper_the_digest_is_an_hmac_that_differs_per_pepper() -> None:
    key = generate_key()
    one = KeyHasher(Secret("pepper-one"))
    assert one.peppered
    expected = hmac.new(b"pepper-one", key.encode(), hashlib.sha256).hexdigest()
    assert one.digest(key) == expected
    assert one.digest(key) != KeyHasher(Secret("pepper-two")).digest(key)
    assert one.digest(key) != KeyHasher().digest(key)


def test_the_pepper_never_shows() -> None:
    hasher = KeyHasher(Secret("pepper-one"))
    assert "pepper-one" not in repr(hasher)


def test_the_display_name_shows_only_the_last_four_characters() -> None:
    assert abbreviate("sk-RV-l2BJEZ_LYNChSx2EueQ") == "sk-...EueQ"
