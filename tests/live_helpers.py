"""Helpers the end-to-end tests of whole calls share: the official SDK on a test server, the
web-call socket URL, waiting for an agent turn or a condition."""

import asyncio
import time
from collections.abc import Callable

from retell import Retell

from tests.caller import WebCaller
from tests.servers import ServerProcess


def sdk(server: ServerProcess) -> Retell:
    """The official Python SDK, strict, on `server`."""
    return Retell(api_key=server.api_key, base_url=server.base_url, _strict_response_validation=True, max_retries=0)


def socket_url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/web-call-websocket"


async def agent_turn_done(caller: WebCaller, after: float, within: float = 40.0) -> float:
    """When the agent next stops talking after `after`."""
    async with asyncio.timeout(within):
        start = await caller.wait_event("agent_start_talking", after)
        return await caller.wait_event("agent_stop_talking", start)


async def until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
