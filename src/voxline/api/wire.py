"""Responses serialised straight from the wire models (Pydantic's Rust encoder, no `None`s)."""

from collections.abc import Sequence

from fastapi import Response
from pydantic import TypeAdapter

from voxline.schemas.base import ErrorResponse, WireModel

_list_adapters: dict[type, TypeAdapter[list[WireModel]]] = {}

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "Invalid request (the message names the field)"},
    401: {"model": ErrorResponse, "description": "API key is missing or invalid"},
    404: {"model": ErrorResponse, "description": "No such resource"},
}


def wire(model: WireModel, status_code: int = 200) -> Response:
    return Response(
        content=model.model_dump_json(exclude_none=True, by_alias=True),
        status_code=status_code,
        media_type="application/json",
    )


def wire_list(items: Sequence[WireModel], item_type: type[WireModel]) -> Response:
    adapter = _list_adapters.get(item_type)
    if adapter is None:
        adapter = _list_adapters[item_type] = TypeAdapter(list[item_type])  # type: ignore[valid-type]
    return Response(
        content=adapter.dump_json(list(items), exclude_none=True, by_alias=True),
        media_type="application/json",
    )


def no_content() -> Response:
    return Response(status_code=204)
