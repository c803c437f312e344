"""API-key authentication for the REST API (`Authorization: Bearer <api key>`)."""

from fastapi import Depends, Request

from voxline.errors import BadRequest, NotFound, Unauthorized
from voxline.keys import KeyInfo
from voxline.schemas.base import UNSTORABLE
from voxline.services import Services


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def require_api_key(request: Request) -> KeyInfo:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthorized("API key is missing or invalid.")
    info = await get_services(request).keys.verify(credential.strip())
    if info is None:
        raise Unauthorized("API key is missing or invalid.")
    request.state.api_key = info
    return info


async def require_storable_url(request: Request) -> None:
    """Ids and query values with NUL or lone surrogates name nothing this server can store."""
    if UNSTORABLE.search(request.scope["path"]):
        raise NotFound("The requested resource was not found.")
    for name, value in request.query_params.multi_items():
        if UNSTORABLE.search(name) or UNSTORABLE.search(value):
            raise BadRequest(f"{name}: NUL characters and unpaired surrogates are not allowed")


ApiKeyDep = Depends(require_api_key)
StorableUrlDep = Depends(require_storable_url)
