"""Retell's request signature (spec G.3) and the JSON serialisation that keeps it verifiable.

Header: ``X-Retell-Signature: v=<timestamp_ms>,d=<hex>`` where ``hex`` is the lowercase hex
HMAC-SHA256, keyed with the API key (UTF-8), of the raw body string followed directly by the
decimal timestamp.

Receivers usually verify a *re-serialised* body: Node with ``JSON.stringify(req.body)``, Python
with ``json.dumps(body, separators=(",", ":"), ensure_ascii=False)``. `compact_json` emits the
form both of those reproduce byte for byte:

- no whitespace, non-ASCII characters unescaped;
- integral floats as integers (``1.0`` -> ``1``) with JavaScript's digits (shortest round trip);
- object keys that are array indexes (``"0"``, ``"17"``) first, in ascending numeric order,
  because that is the order JavaScript objects enumerate them in.

Residual mismatches (not fixable by the sender, since each receiver has one fixed output):
non-zero floats with magnitude below 1e-4 (Python prints ``1e-05``, JavaScript ``0.00001``)
and integers beyond 2**53 (JavaScript loses precision). Non-finite floats raise ValueError.
"""

import decimal
import hashlib
import hmac
import json
import math
import re

SIGNATURE_HEADER = "X-Retell-Signature"

_JS_INTEGER_LIMIT = 1e21  # JavaScript prints integral numbers this large in exponent form
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_MAX_ARRAY_INDEX = 2**32 - 2


def sign(body: str, key: str, timestamp_ms: int) -> str:
    """The ``X-Retell-Signature`` value for `body` sent at `timestamp_ms`."""
    message = (body + str(timestamp_ms)).encode("utf-8")
    digest = hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"v={timestamp_ms},d={digest}"


def compact_json(obj: object) -> str:
    """Serialise `obj` so that Python and JavaScript receivers re-serialise it identically."""
    return json.dumps(_normalise(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _normalise(value: object) -> object:
    if isinstance(value, float):
        return _normalise_float(value)
    if isinstance(value, dict):
        return _normalise_dict(value)
    if isinstance(value, list | tuple):
        return [_normalise(item) for item in value]
    return value


def _normalise_float(value: float) -> float | int:
    if not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be represented in JSON")
    if value.is_integer() and abs(value) < _JS_INTEGER_LIMIT:
        # The shortest round-trip digits, as JavaScript prints them (2.0**60 -> 1152921504606847000).
        return int(decimal.Decimal(repr(value)))
    return value


def _normalise_dict(value: dict[object, object]) -> dict[str, object]:
    items = [(_key(key), _normalise(item)) for key, item in value.items()]
    indexes = sorted((item for item in items if _is_array_index(item[0])), key=lambda item: int(item[0]))
    others = [item for item in items if not _is_array_index(item[0])]
    return dict(indexes + others)


def _key(key: object) -> str:
    """Object keys as `json.dumps` would coerce them."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(_normalise(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _is_array_index(key: str) -> bool:
    return _ARRAY_INDEX.fullmatch(key) is not None and int(key) <= _MAX_ARRAY_INDEX
