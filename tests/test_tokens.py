"""Access tokens: signed, bound to one call, expiring."""

import pytest

from voxline.calls.tokens import AccessTokens, TokenError

NOW = 1_800_000_000_000


def test_token_round_trips_to_its_call() -> None:
    tokens = AccessTokens(b"k" * 32)
    claims = tokens.verify(tokens.issue("call_1", "n1", NOW + 30_000), NOW)
    assert (claims.call_id, claims.nonce, claims.expires_at_ms) == ("call_1", "n1", NOW + 30_000)


def test_same_claims_sign_to_the_same_token() -> None:
    tokens = AccessTokens(b"k" * 32)
    assert tokens.issue("call_1", "n1", NOW) == tokens.issue("call_1", "n1", NOW)


def test_expired_token_is_refused_to_the_millisecond() -> None:
    tokens = AccessTokens(b"k" * 32)
    token = tokens.issue("call_1", "n1", NOW + 1)
    tokens.verify(token, NOW)
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token, NOW + 1)


def test_token_signed_with_another_key_is_refused() -> None:
    forged = AccessTokens(b"x" * 32).issue("call_1", "n1", NOW + 30_000)
    with pytest.raises(TokenError, match="invalid"):
        AccessTokens(b"k" * 32).verify(forged, NOW)


def test_tampered_token_is_refused() -> None:
    tokens = AccessTokens(b"k" * 32)
    header, _payload, signature = tokens.issue("call_1", "n1", NOW + 30_000).split(".")
    other_payload = tokens.issue("call_2", "n1", NOW + 30_000).split(".")[1]
    with pytest.raises(TokenError):
        tokens.verify(f"{header}.{other_payload}.{signature}", NOW)
