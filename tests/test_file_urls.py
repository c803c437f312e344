"""Paths and signed, expiring query strings for a call's files."""

import hashlib
import hmac
from urllib.parse import parse_qs

import pytest

from voxline.calls.file_urls import (
    DEFAULT_SIGNED_URL_EXPIRATION_MS,
    MAX_EXPIRES_MS,
    file_path,
    signed_query,
    verify_signed,
)

SECRET = b"0123456789abcdef0123456789abcdef"
CALL = "call_a4441234567890777c4a4a123e6"
OTHER_CALL = "call_a4441234567890777c4a4a123e7"
NAME = "recording.wav"
NOW = 1_764_000_000_000
EXPIRES = NOW + DEFAULT_SIGNED_URL_EXPIRATION_MS


def _params(query: str) -> tuple[str, str]:
    parsed = parse_qs(query, strict_parsing=True)
    assert sorted(parsed) == ["expires", "signature"]
    return parsed["expires"][0], parsed["signature"][0]


def _verify(expires: str | None, signature: str | None, **overrides: object) -> bool:
    args: dict[str, object] = {"call_id": CALL, "name": NAME, "secret": SECRET, "now_ms": NOW}
    args.update(overrides)
    return verify_signed(expires=expires, signature=signature, **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def signed() -> tuple[str, str]:
    return _params(signed_query(CALL, NAME, SECRET, EXPIRES))


def test_file_path() -> None:
    assert file_path(CALL, NAME) == f"/v2/call-files/{CALL}/{NAME}"
    assert file_path(CALL, "public_log.txt") == f"/v2/call-files/{CALL}/public_log.txt"


@pytest.mark.parametrize(("call_id", "name"), [("call_x/..", NAME), (CALL, "../x"), (CALL, "a?b"), ("", NAME)])
def test_file_path_refuses_bad_parts(call_id: str, name: str) -> None:
    with pytest.raises(ValueError):
        file_path(call_id, name)


def test_query_shape_and_scheme(signed: tuple[str, str]) -> None:
    expires, signature = signed
    assert signed_query(CALL, NAME, SECRET, EXPIRES) == f"expires={EXPIRES}&signature={signature}"
    assert expires == str(EXPIRES)
    message = f"voxline.call-file-url.v1\n{CALL}\n{NAME}\n{EXPIRES}".encode()
    assert signature == hmac.new(SECRET, message, hashlib.sha256).hexdigest()


def test_valid_signature_until_expiry(signed: tuple[str, str]) -> None:
    expires, signature = signed
    assert _verify(expires, signature)
    assert _verify(expires, signature, now_ms=0)
    assert _verify(expires, signature, now_ms=EXPIRES - 1)


def test_expired(signed: tuple[str, str]) -> None:
    expires, signature = signed
    assert not _verify(expires, signature, now_ms=EXPIRES)
    assert not _verify(expires, signature, now_ms=EXPIRES + 1)


def test_tampered_target_or_expiry(signed: tuple[str, str]) -> None:
    expires, signature = signed
    assert not _verify(expires, signature, call_id=OTHER_CALL)
    assert not _verify(expires, signature, name="recording_multi_channel.wav")
    assert not _verify(expires, signature, name="public_log.txt")
    assert not _verify(str(EXPIRES + 1), signature)
    assert not _verify(str(EXPIRES * 10), signature)


def test_signature_is_canonical(signed: tuple[str, str]) -> None:
    expires, signature = signed
    assert not _verify("0" + expires, signature)  # same number, other spelling
    assert not _verify("+" + expires, signature)
    assert not _verify(expires, signature.upper())
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert not _verify(expires, flipped)


def test_different_secret(signed: tuple[str, str]) -> None:
    expires, signature = signed
    assert not _verify(expires, signature, secret=SECRET + b"x")
    assert not _verify(expires, signature, secret=b"another secret entirely")


def test_not_interchangeable_with_a_plain_hmac_of_the_same_fields() -> None:
    plain = hmac.new(SECRET, f"{CALL}\n{NAME}\n{EXPIRES}".encode(), hashlib.sha256).hexdigest()
    assert not _verify(str(EXPIRES), plain)


@pytest.mark.parametrize(
    ("expires", "signature"),
    [
        (None, None),
        (str(EXPIRES), None),
        (None, "0" * 64),
        ("", "0" * 64),
        ("soon", "0" * 64),
        ("-1", "0" * 64),
        (" 1", "0" * 64),
        ("1.5", "0" * 64),
        ("1e20", "0" * 64),
        ("١٢٣", "0" * 64),  # Arabic-Indic digits: isdigit() but not ASCII
        ("9" * 40, "0" * 64),
        (str(MAX_EXPIRES_MS + 1), "0" * 64),
        (str(EXPIRES), ""),
        (str(EXPIRES), "0" * 63),
        (str(EXPIRES), "0" * 65),
        (str(EXPIRES), "g" * 64),
        (str(EXPIRES), "0" * 64 + "\n"),
        (str(EXPIRES), "é" * 64),
        (str(EXPIRES), "0" * 10_000),
    ],
)
def test_malformed_values_are_false(expires: str | None, signature: str | None) -> None:
    assert not _verify(expires, signature)


@pytest.mark.parametrize(
    "overrides",
    [
        {"call_id": "call_a/../x"},
        {"call_id": None},
        {"name": "a\nb"},
        {"name": 7},
        {"secret": b""},
        {"secret": "text secret"},
        {"now_ms": None},
        {"now_ms": "0"},
        {"now_ms": True},
    ],
)
def test_malformed_arguments_are_false(signed: tuple[str, str], overrides: dict[str, object]) -> None:
    assert not _verify(*signed, **overrides)


@pytest.mark.parametrize(
    ("call_id", "name", "secret", "expires_at"),
    [
        ("call_x/..", NAME, SECRET, EXPIRES),
        (CALL, "../x", SECRET, EXPIRES),
        (CALL, NAME, b"", EXPIRES),
        (CALL, NAME, SECRET, -1),
        (CALL, NAME, SECRET, MAX_EXPIRES_MS + 1),
        (CALL, NAME, SECRET, 1.5),
        (CALL, NAME, SECRET, True),
    ],
)
def test_signing_refuses_bad_arguments(call_id: str, name: str, secret: bytes, expires_at: int) -> None:
    with pytest.raises(ValueError):
        signed_query(call_id, name, secret, expires_at)


def test_extreme_expiry_round_trips() -> None:
    expires, signature = _params(signed_query(CALL, NAME, SECRET, MAX_EXPIRES_MS))
    assert _verify(expires, signature)
    expires, signature = _params(signed_query(CALL, NAME, SECRET, 0))
    assert expires == "0" and not _verify(expires, signature, now_ms=0)
