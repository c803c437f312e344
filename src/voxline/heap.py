"""Give the C heap's freed memory back to the operating system after calls (glibc `malloc_trim`).

Every turn of a call allocates and frees tens of MB in C: audio arrays, Whisper's encoder and
decoder buffers (CTranslate2), Silero's (ONNX Runtime), database rows. glibc's malloc keeps what
is freed in its arenas (one per thread that allocated, up to 8 per core) for reuse, and only the
top of each heap is ever returned by itself. Fragmented by calls that start and end at different
moments, that kept memory grows for a long time after the load starts although nothing leaks: in
bench/soak.py the C heap in use stayed flat while the memory freed but kept grew by tens of MB and
the process's RSS with it. `malloc_trim(0)` hands every whole free page in every arena back
(madvise), so the RSS of a long-running server follows what it uses.

Trimming locks each arena while it walks it (milliseconds), so it runs in a worker thread, at most
once per `interval_s`, a little after a call ends. `heap_stats` (glibc's `mallinfo2`) tells memory
in use from memory freed and kept, for `GET /voxline/runtime`. Elsewhere than glibc both do nothing.
"""

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc with `malloc_trim` and `mallinfo2` (2.33+), else None."""
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.restype = ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallinfo2.restype = _MallInfo2
        libc.mallinfo2.argtypes = []
    except (OSError, AttributeError):  # musl, or a glibc older than 2.33
        return None
    return libc


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


@dataclass(frozen=True)
class HeapStats:
    """glibc's `mallinfo2()` summed over its arenas, in bytes."""

    in_use_bytes: int
    """Allocated and not freed (`uordblks` + `hblkhd`): what the process's C code holds."""
    free_bytes: int
    """Freed but kept in the arenas (`fordblks`); pages given back by a trim still count here."""
    mmap_bytes: int
    """Of `in_use_bytes`, the large blocks served by their own mmap (`hblkhd`), returned on free."""
    arena_bytes: int
    """Obtained from the system for the arenas (`arena`)."""


def heap_stats() -> HeapStats | None:
    """One `mallinfo2()` call (it locks each arena in turn and walks its free lists: well under a
    millisecond here); None where the C library is not glibc 2.33+."""
    libc = _glibc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    return HeapStats(
        in_use_bytes=info.uordblks + info.hblkhd,
        free_bytes=info.fordblks,
        mmap_bytes=info.hblkhd,
        arena_bytes=info.arena,
    )


def trim_heap() -> bool:
    """`malloc_trim(0)` now, in the calling thread; True when memory was given back."""
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))


def _timed_trim() -> float:
    started = time.perf_counter()
    trim_heap()
    return time.perf_counter() - started


class HeapTrimmer:
    """Trims the heap in a worker thread, at most once per `interval_s` (0: never)."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last = -float("inf")
        self._pending: asyncio.Task[None] | None = None
        self.trims = 0
        """Trims run so far."""
        self.trim_seconds = 0.0
        """Time they took, in all (arenas are locked meanwhile: other threads' mallocs wait)."""

    @property
    def enabled(self) -> bool:
        return self._interval_s > 0 and _glibc() is not None

    def request(self) -> None:
        """Trim soon: now if the last trim is `interval_s` old, else when it will be. Requests while one
        is waiting share it. Call from the event loop."""
        if not self.enabled or (self._pending is not None and not self._pending.done()):
            return
        self._pending = asyncio.get_running_loop().create_task(self._trim_when_due(), name="heap-trim")

    async def _trim_when_due(self) -> None:
        await asyncio.sleep(max(0.0, self._last + self._interval_s - self._clock()))
        self._last = self._clock()
        try:
            self.trim_seconds += await asyncio.to_thread(_timed_trim)
            self.trims += 1
        except Exception:  # housekeeping must never fail a call: log it and go on
            log.exception("malloc_trim failed")

    async def close(self) -> None:
        """Cancel a trim that is still waiting (server shut-down)."""
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending
