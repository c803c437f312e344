"""URLs of a call's files (``recording_url`` and friends) and the signature that lets them work without an API key.

A signed URL is ``/v2/call-files/<call_id>/<name>?expires=<ms>&signature=<hex>``: ``signature`` is
the lowercase hex HMAC-SHA256, keyed with the server's secret, of

    voxline.call-file-url.v1 LF <call_id> LF <name> LF <expires>

The first line is a purpose label: the same secret signs access tokens (JWTs, whose signing input
holds no line feed), so no other HMAC the server computes can pass for a file signature. Call ids
and names are validated (no line feeds), and ``expires`` must be canonical decimal (no sign, no
leading zeros), so each URL has exactly one valid signature. The URL works while ``now < expires``.
"""

import hashlib
import hmac
import re

from voxline.store.objects import check_call_id, check_file_name

DEFAULT_SIGNED_URL_EXPIRATION_MS = 86_400_000
PURPOSE = "voxline.call-file-url.v1"
MAX_EXPIRES_MS = 2**63 - 1

_EXPIRES = re.compile(r"0|[1-9][0-9]{0,18}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


def file_path(call_id: str, name: str) -> str:
    """``/v2/call-files/<call_id>/<name>``; ValueError for an invalid call id or name."""
    return f"/v2/call-files/{check_call_id(call_id)}/{check_file_name(name)}"


def signed_query(call_id: str, name: str, secret: bytes, expires_at_ms: int) -> str:
    """``expires=<ms>&signature=<hex>`` for `file_path`; ValueError for invalid arguments."""
    if isinstance(expires_at_ms, bool) or not isinstance(expires_at_ms, int):
        raise ValueError(f"expires_at_ms must be an int, not {expires_at_ms!r}")
    if not 0 <= expires_at_ms <= MAX_EXPIRES_MS:
        raise ValueError(f"expires_at_ms out of range: {expires_at_ms}")
    if not isinstance(secret, bytes) or not secret:
        raise ValueError("an empty or non-bytes secret cannot sign")
    check_call_id(call_id)
    check_file_name(name)
    return f"expires={expires_at_ms}&signature={_signature(call_id, name, secret, expires_at_ms)}"


def verify_signed(
    call_id: str, name: str, expires: str | None, signature: str | None, secret: bytes, now_ms: int
) -> bool:
    """Whether the query values sign this file and have not expired. False for anything malformed; never raises."""
    expires_at = _parse_expires(expires)
    if expires_at is None or not isinstance(signature, str) or not _SIGNATURE.fullmatch(signature):
        return False
    if not _valid_target(call_id, name) or not isinstance(secret, bytes) or not secret:
        return False
    if isinstance(now_ms, bool) or not isinstance(now_ms, int) or now_ms >= expires_at:
        return False
    return hmac.compare_digest(_signature(call_id, name, secret, expires_at), signature)


def _signature(call_id: str, name: str, secret: bytes, expires_at_ms: int) -> str:
    message = f"{PURPOSE}\n{call_id}\n{name}\n{expires_at_ms}".encode("ascii")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _parse_expires(expires: str | None) -> int | None:
    if not isinstance(expires, str) or not _EXPIRES.fullmatch(expires):
        return None
    value = int(expires)
    return value if value <= MAX_EXPIRES_MS else None


def _valid_target(call_id: str, name: str) -> bool:
    try:
        check_call_id(call_id)
        check_file_name(name)
    except ValueError:
        return False
    return True
