"""Runtime figures of this server process (Voxline extension, `GET /voxline/runtime`).

For operators and benchmarks (bench/soak.py): what the process holds right now, so a long run can
tell a leak (tasks, file descriptors, threads, memory that keep growing) from a steady state. Not
part of Retell's API; left out of the OpenAPI document like the console's other extension routes.
"""

import asyncio
import collections
import contextlib
import gc
import os
import re
import resource
import sys
import threading
import time

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from voxline.api.auth import ApiKeyDep, StorableUrlDep, get_services
from voxline.api.wire import ERROR_RESPONSES
from voxline.heap import HeapStats, heap_stats

router = APIRouter(dependencies=[ApiKeyDep, StorableUrlDep], responses=ERROR_RESPONSES, tags=["Server"])

_LOADED = time.monotonic()  # the app imports this module while it is built, at process start-up
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TOP_TASK_NAMES = 20
TOP_OBJECT_TYPES = 40


class RuntimeResponse(BaseModel):
    """`GET /voxline/runtime`. `None` (JSON null) where the platform cannot tell."""

    asyncio_tasks: int
    """Tasks on the server's event loop that are not done yet (including the one serving this request)."""
    task_names: dict[str, int]
    """The most common of those tasks (top 20) by their coroutine's qualified name, with counts."""
    threads: int
    """Python threads alive (`threading.active_count()`): executor workers, the database's, Whisper's."""
    thread_names: dict[str, int]
    """Those threads by name with the pool's serial number dropped (`asyncio_3` counts as `asyncio`)."""
    open_fds: int | None
    """File descriptors the process has open (`/proc/self/fd`); null where there is no /proc."""
    rss_bytes: int | None
    """Resident memory of this process (not of its Piper worker processes)."""
    live_calls: int
    """Conversations this process is running right now."""
    gc_objects: int
    """Objects the garbage collector tracks, outside the set frozen at start-up. (The frozen set's
    size is left out: `gc.get_freeze_count()` walks it, ~16 ms for the server's ~160k objects.)"""
    uptime_s: float
    """Seconds since the application was built."""
    malloc: HeapStats | None = None
    """The C heap as glibc's allocator sees it (`mallinfo2`, summed over its arenas); null where the
    C library is not glibc 2.33 or later. Tells memory the process still uses from memory it freed but
    the allocator keeps: a leak grows `in_use_bytes`, fragmentation and retention grow only
    `free_bytes` (and RSS). Python's small objects live in pymalloc's own mmap'ed arenas, not here."""
    heap_trims: int = 0
    """Times the server gave the C heap's free memory back to the OS (`VOXLINE_MALLOC_TRIM_INTERVAL_S`)."""
    heap_trim_seconds: float = 0.0
    """The time those trims took, in all."""
    gc_types: dict[str, int] | None = None
    """With `?object_types=true`: the 40 most common types among those objects, with counts (after a
    full collection, so that both counts are of live objects)."""


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the descriptor listdir itself holds open
    except OSError:
        return None


def _rss_bytes() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE_SIZE
    # No /proc: the peak RSS is the best getrusage offers (KiB on Linux, bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _object_types() -> dict[str, int]:
    """The most common types among the collector's objects (`?object_types=true`): what a growing
    `gc_objects` is made of."""
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    return dict(counts.most_common(TOP_OBJECT_TYPES))


def _thread_group(name: str) -> str:
    return re.sub(r"[_-]\d+$", "", name)


def _task_name(task: "asyncio.Task[object]") -> str:
    coro = task.get_coro()
    return str(getattr(coro, "__qualname__", None) or type(coro).__name__)


@router.get("/voxline/runtime", response_model=RuntimeResponse, include_in_schema=False)
async def runtime(request: Request, object_types: bool = False) -> Response:
    """Tasks, threads, descriptors, memory and live calls of this process.

    `gc_objects` walks the collector's lists: O(tracked objects), about 1 ms on an idle server whose
    start-up objects are frozen, more under load. Fine for an operator's or a benchmark's occasional
    look (it holds the event loop meanwhile), not for a tight poll."""
    if object_types:  # count what is alive, not cyclic garbage the collector has not reached yet
        gc.collect()
    tasks = asyncio.all_tasks()
    names = collections.Counter(_task_name(t) for t in tasks)
    body = RuntimeResponse(
        asyncio_tasks=len(tasks),
        task_names=dict(names.most_common(TOP_TASK_NAMES)),
        threads=threading.active_count(),
        thread_names=dict(collections.Counter(_thread_group(t.name) for t in threading.enumerate()).most_common()),
        open_fds=_open_fds(),
        rss_bytes=_rss_bytes(),
        live_calls=get_services(request).live.running,
        gc_objects=len(gc.get_objects()),
        uptime_s=round(time.monotonic() - _LOADED, 3),
        malloc=heap_stats(),
        heap_trims=get_services(request).heap.trims,
        heap_trim_seconds=round(get_services(request).heap.trim_seconds, 4),
        gc_types=_object_types() if object_types else None,
    )
    return Response(content=body.model_dump_json(), media_type="application/json")
