"""Example LLM servers shipped with Voxline, mounted in the API process for convenience.

`/examples/receptionist/llm-websocket/{call_id}` is the EXAMPLE receptionist (not an LLM; see
voxline.examples.receptionist). It takes no API key on purpose: it stands in for a developer's own
LLM server, which Voxline dials without credentials (spec E.1). Point an agent at it with
`{"type": "custom-llm", "llm_websocket_url": "ws://<voxline host>/examples/receptionist/llm-websocket"}`.
"""

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voxline.examples.receptionist import run_receptionist

router = APIRouter(tags=["Examples"])


class _StarletteChannel:
    """The receptionist's `Channel` over a Starlette WebSocket; binary frames are skipped."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def send_text(self, text: str) -> None:
        await self.websocket.send_text(text)

    async def receive_text(self) -> str | None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text")
            if text is not None:
                return str(text)


@router.websocket("/examples/receptionist/llm-websocket/{call_id}")
async def receptionist_llm_websocket(websocket: WebSocket, call_id: str) -> None:
    await websocket.accept()
    try:
        await run_receptionist(_StarletteChannel(websocket))
    except (WebSocketDisconnect, RuntimeError):
        # The platform hung up while we were sending (Starlette raises either, by version).
        pass
