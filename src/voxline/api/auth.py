"""API-key authentication for the REST API (`Authorization: Bearer <api key>`)."""

from fastapi import Depends, Request

from voxline.errors import Unauthorized
from voxline.keys import KeyInfo
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


ApiKeyDep = Depends(require_api_key)
