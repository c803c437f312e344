"""A tool author's HTTP server for tests: records every request exactly as it arrived and answers
as the test scripts (status, body, delay). Runs under uvicorn in a background thread, so tests in
the same process and servers in other processes can both reach it."""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class Reply:
    status: int = 200
    body: str = '{"ok":true}'
    delay: float = 0.0
    content_type: str = "application/json"


@dataclass
class ToolServer:
    port: int
    requests: list[Seen] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in order; then `Reply()`."""
        self.replies[:] = list(replies)

    def reset(self) -> "ToolServer":
        self.requests.clear()
        self.replies.clear()
        return self

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        query = parse_qs(request.url.query, keep_blank_values=True)
        self.requests.append(Seen(request.method, request.url.path, query, dict(request.headers), body))
        reply = self.replies.pop(0) if self.replies else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return Response(reply.body, status_code=reply.status, media_type=reply.content_type)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_tool_server() -> Iterator[ToolServer]:
    tool_server = ToolServer(free_port())
    app = Starlette(routes=[Route("/{path:path}", tool_server.endpoint, methods=ALL_METHODS)])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=tool_server.port, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "tool server did not start"
        time.sleep(0.01)
    try:
        yield tool_server
    finally:
        server.should_exit = True
        thread.join(timeout=5)
