"""Opaque pagination keys: the sort position of the last item returned."""

import base64
import json
from typing import Any

from voxline.errors import BadRequest
from voxline.schemas.base import find_unstorable


def encode_key(*position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_key(key: str, arity: int) -> list[Any]:
    try:
        padded = key + "=" * (-len(key) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("pagination_key: not a key this server issued") from exc
    if not isinstance(position, list) or len(position) != arity:
        raise BadRequest("pagination_key: not a key this server issued")
    return position


def _position(key: str) -> tuple[int, str]:
    """A keyset position (created_at, id), checked so that nothing forged reaches SQL."""
    ts, last_id = decode_key(key, 2)
    if (
        type(ts) is not int
        or not -(2**63) <= ts < 2**63
        or not isinstance(last_id, str)
        or not 0 < len(last_id) <= 64
        or find_unstorable(last_id) is not None
    ):
        raise BadRequest("pagination_key: not a key this server issued")
    return ts, last_id


def keyset_after(ts_column: Any, id_column: Any, key: str, descending: bool) -> Any:
    """The SQL condition "comes after the item this key names" for an (ts, id) ordering."""
    ts, last_id = _position(key)
    if descending:
        return (ts_column < ts) | ((ts_column == ts) & (id_column < last_id))
    return (ts_column > ts) | ((ts_column == ts) & (id_column > last_id))


def ordered(ts_column: Any, id_column: Any, descending: bool) -> tuple[Any, Any]:
    if descending:
        return ts_column.desc(), id_column.desc()
    return ts_column.asc(), id_column.asc()
