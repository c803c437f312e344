"""The heap trim after calls (voxline.heap): memory freed in C goes back to the OS, at a bounded rate."""

import asyncio
import ctypes
import ctypes.util
import os
import sys

import pytest

from voxline.heap import HeapTrimmer, heap_stats, trim_heap

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@glibc_only
def test_trim_gives_freed_heap_memory_back() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    # 150 MB in 4 KB blocks (below the mmap threshold: from the heap), touched so they are resident,
    # then all freed but every 64th: the survivors pin the heap, so free() itself gives back little.
    blocks = [libc.malloc(4096) for _ in range(150_000 // 4)]
    for block in blocks:
        libc.memset(block, 1, 4096)
    kept = blocks[::64]
    for i, block in enumerate(blocks):
        if i % 64:
            libc.free(block)
    held = rss_mb()
    assert trim_heap()
    trimmed = rss_mb()
    for block in kept:
        libc.free(block)
    assert held - trimmed > 100, (held, trimmed)


@glibc_only
async def test_trims_are_spaced_by_the_interval() -> None:
    trimmer = HeapTrimmer(interval_s=0.5)
    assert trimmer.enabled
    trimmer.request()
    await asyncio.sleep(0.2)
    assert trimmer.trims == 1  # the first one at once
    trimmer.request()
    trimmer.request()  # shares the waiting one
    await asyncio.sleep(0.1)
    assert trimmer.trims == 1  # the next not before 0.5 s after the first
    await asyncio.sleep(0.5)
    assert trimmer.trims == 2
    await trimmer.close()


async def test_interval_zero_never_trims() -> None:
    trimmer = HeapTrimmer(interval_s=0)
    assert not trimmer.enabled
    trimmer.request()
    await asyncio.sleep(0.05)
    assert trimmer.trims == 0
    await trimmer.close()


@glibc_only
async def test_close_cancels_a_waiting_trim() -> None:
    trimmer = HeapTrimmer(interval_s=60)
    trimmer.request()
    await asyncio.sleep(0.1)
    trimmer.request()  # due in a minute
    await trimmer.close()
    assert trimmer.trims == 1
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "heap-trim"]


@glibc_only
def test_malloc_figures_follow_a_c_allocation_and_its_release() -> None:
    before = heap_stats()
    assert before is not None
    block = ctypes.create_string_buffer(64 * 1024 * 1024)  # malloc'ed (mmap'ed at this size)
    held = heap_stats()
    assert held is not None
    assert held.in_use_bytes - before.in_use_bytes >= 64 * 1024 * 1024, (before, held)
    del block
    after = heap_stats()
    assert after is not None
    assert held.in_use_bytes - after.in_use_bytes >= 64 * 1024 * 1024, (held, after)
