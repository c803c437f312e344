"""Base classes shared by every wire model.

Request models ignore unknown keys (older SDKs send fields that newer ones removed, such as
`normalize_for_speech`); response models are serialised without `None` values, which the SDKs
read as "absent" (spec I.8).
"""

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
Version = Annotated[int, Field(ge=0, le=MAX_INT32)]
"""A version number: what the store's integer version columns hold."""
Int64 = Annotated[int, Field(ge=-MAX_INT64 - 1, le=MAX_INT64)]
"""Timestamps and counts that meet BIGINT columns."""

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL and lone UTF-16 surrogates: valid in JSON escapes, but no database text column takes them."""


def find_unstorable(value: Any, path: str = "") -> str | None:
    """The path of the first string (value or key) that holds NUL or a lone surrogate, if any."""
    if isinstance(value, str):
        return path or "body" if UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and UNSTORABLE.search(key):
                return where
            found = find_unstorable(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_unstorable(item, f"{path}[{index}]")
            if found:
                return found
    return None


class WireModel(BaseModel):
    """A JSON object of the Retell API. Unknown keys are ignored, names are the wire names."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=())

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict the API sends: no `None` values, wire (alias) names."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class RequestModel(WireModel):
    """A request body. Refuses text the store cannot keep (NUL, lone surrogates) with a 400 that
    names the field, instead of a database error later."""

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        where = find_unstorable(data)
        if where is not None:
            raise ValueError(f"{where}: NUL characters and unpaired surrogates are not allowed")
        return data


class ErrorResponse(WireModel):
    """Retell's error body: `{"status": "error", "message": "..."}`."""

    status: str = "error"
    message: str
