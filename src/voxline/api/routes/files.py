"""A call's stored files (recordings, public log), as linked from the call object.

Access: a valid signed URL (`?expires=…&signature=…`, for agents with `opt_in_signed_url`), else
the API key. `Range` requests are answered with 206, so a browser's audio player can seek.
"""

import re

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from voxline.api.auth import get_services, require_api_key
from voxline.calls.file_urls import verify_signed
from voxline.errors import NotFound, Unauthorized
from voxline.store.objects import call_key

router = APIRouter(include_in_schema=False)
RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@router.get("/v2/call-files/{call_id}/{name}")
async def call_file(request: Request, call_id: str, name: str) -> Response:
    services = get_services(request)
    query = request.query_params
    if "signature" in query or "expires" in query:
        now = services.clock.now_ms()
        if not verify_signed(
            call_id, name, query.get("expires"), query.get("signature"), services.settings.token_secret, now
        ):
            raise Unauthorized("The signed URL is invalid or has expired.")
    else:
        await require_api_key(request)
    row = await services.calls.get(call_id)
    if name not in (row.config.get("files") or {}):
        raise NotFound(f"call {call_id} has no file {name}")
    key = call_key(call_id, name)
    info = await services.objects.info(key)
    if info is None:
        raise NotFound(f"call {call_id} has no file {name}")
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=0"}
    start, end, status = 0, info.size, 200
    match = RANGE.match(request.headers.get("range", "").strip())
    if match and (match.group(1) or match.group(2)):
        first, last = match.group(1), match.group(2)
        if first:
            start, end = int(first), min(info.size, int(last) + 1) if last else info.size
        else:  # the last N bytes
            start, end = max(0, info.size - int(last)), info.size
        if start >= info.size or start >= end:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{info.size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(
        services.objects.read(key, start, end), status_code=status, media_type=info.content_type, headers=headers
    )
