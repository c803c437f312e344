"""`GET /voxline/runtime`: the process's tasks, threads, descriptors, memory and live calls."""

import sys

import httpx

from tests.servers import ServerProcess


def test_runtime_needs_an_api_key(server: ServerProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer key_0000"}):
        response = httpx.get(server.base_url + "/voxline/runtime", headers=headers)
        assert response.status_code == 401
        assert response.json() == {"status": "error", "message": "API key is missing or invalid."}


def test_runtime_figures_of_an_idle_server(api: httpx.Client) -> None:
    response = api.get("/voxline/runtime")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {
        "asyncio_tasks",
        "task_names",
        "threads",
        "thread_names",
        "open_fds",
        "rss_bytes",
        "live_calls",
        "gc_objects",
        "uptime_s",
    }
    assert body["asyncio_tasks"] >= 1  # at least the task serving this request
    assert sum(body["task_names"].values()) <= body["asyncio_tasks"]
    assert body["threads"] >= 1
    assert body["thread_names"].get("MainThread") == 1
    assert sum(body["thread_names"].values()) == body["threads"]
    assert body["open_fds"] > 0
    assert body["rss_bytes"] > 10 * 1024 * 1024
    assert body["live_calls"] == 0
    assert body["gc_objects"] > 0
    assert body["uptime_s"] > 0
    again = api.get("/voxline/runtime").json()
    assert again["uptime_s"] >= body["uptime_s"]
    if sys.platform.startswith("linux"):  # glibc 2.33+ (Debian 12 has 2.36)
        heap = body["malloc"]
        assert heap["in_use_bytes"] > 1024 * 1024 and heap["arena_bytes"] > 0, heap
        assert 0 <= heap["mmap_bytes"] <= heap["in_use_bytes"] and heap["free_bytes"] >= 0, heap
    assert body["gc_types"] is None  # only on request: it walks every object
    types = api.get("/voxline/runtime", params={"object_types": "true"}).json()["gc_types"]
    assert types["dict"] > 0 and len(types) <= 40


def test_runtime_is_not_in_the_openapi_document(api: httpx.Client) -> None:
    assert "/voxline/runtime" not in api.get("/openapi.json").json()["paths"]
