"""Ordered, deadline-bounded sends to a peer, off the control path.

Control code never awaits a provider or the client directly: it submits a job to a lane and
carries on, so a slow LLM socket or client cannot delay a barge-in. Each job has a deadline;
a failure is reported once to `on_error` (which usually ends the call with a reason).
"""

import asyncio
from collections.abc import Awaitable, Callable


class SerialLane:
    def __init__(self, timeout_s: float, on_error: Callable[[BaseException], None]) -> None:
        self._timeout_s = timeout_s
        self._on_error = on_error
        self._queue: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()

    def submit(self, job: Callable[[], Awaitable[None]]) -> None:
        self._queue.put_nowait(job)

    async def flush(self) -> None:
        """Wait until every job submitted so far has run (or the lane's deadline passes), for
        callers that must not overtake them, such as the first audio frame of a response."""
        done = asyncio.get_running_loop().create_future()

        async def mark() -> None:
            if not done.done():
                done.set_result(None)

        self.submit(mark)
        try:
            async with asyncio.timeout(self._timeout_s):
                await done
        except TimeoutError:
            pass  # the lane reports its own failure; never hold the audio forever

    async def run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                async with asyncio.timeout(self._timeout_s):
                    await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._on_error(exc)
