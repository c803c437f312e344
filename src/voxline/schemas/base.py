"""Base classes shared by every wire model.

Request models ignore unknown keys (older SDKs send fields that newer ones removed, such as
`normalize_for_speech`); response models are serialised without `None` values, which the SDKs
read as "absent" (spec I.8).
"""

from typing import Any

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A JSON object of the Retell API. Unknown keys are ignored, names are the wire names."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=())

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict the API sends: no `None` values, wire (alias) names."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class ErrorResponse(WireModel):
    """Retell's error body: `{"status": "error", "message": "..."}`."""

    status: str = "error"
    message: str
