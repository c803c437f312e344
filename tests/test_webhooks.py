"""Webhook delivery (`voxline.webhooks`) to a real receiver on loopback, over real SQLite and
PostgreSQL databases: body and signature, retries, order per call, independence of calls,
giving up, durability across restarts, the address guard, and the official Python and Node
verifiers."""

import asyncio
import contextlib
import copy
import inspect
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from retell.lib.webhook_auth import verify
from sqlalchemy import Connection

from tests.node_verify import NODE_READY, node_verify
from tests.servers import create_pg_database, drop_pg_database
from tests.tool_server import Reply, Seen, running_tool_server
from voxline.clock import SystemClock
from voxline.signing import compact_json
from voxline.store.database import Database
from voxline.store.migrate import upgrade_to_head
from voxline.store.tables import Base
from voxline.webhooks import Outbox, OutboxEvent, WebhookDispatcher, webhook_http_client
from voxline.webhooks.dispatcher import backoff_s

on_session_loop = pytest.mark.asyncio(loop_scope="session")

KEY = "key_" + "5e" * 24
STARTED, TRANSCRIPT, ENDED = "call_started", "transcript_updated", "call_ended"
EVENTS = (STARTED, TRANSCRIPT, ENDED)


# --- databases, dispatchers, receivers ------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty database of each backend (the same one for every `open_db`)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/outbox.db"
        return
    admin_url = create_pg_database()
    try:
        yield admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        drop_pg_database(admin_url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/outbox.db"


@contextlib.asynccontextmanager
async def open_db(url: str) -> AsyncIterator[Database]:
    """A migrated database, closed (engines and threads) on exit, as at a server stop."""
    db = Database(url)
    try:
        await upgrade_to_head(db)
        yield db
    finally:
        await db.dispose()


@contextlib.asynccontextmanager
async def running(db: Database, *, allow_private: bool = True, **options: Any) -> AsyncIterator[WebhookDispatcher]:
    """A dispatcher whose loop runs until exit (then it is cancelled, as at a server stop)."""
    settings: dict[str, Any] = {"retry_base_s": 0.05, "retry_max_s": 0.2, "poll_interval_s": 0.1, **options}
    async with webhook_http_client(allow_private=allow_private) as http:
        dispatcher = WebhookDispatcher(db, http, KEY, SystemClock(), **settings)
        task = asyncio.create_task(dispatcher.run())
        try:
            yield dispatcher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def call_object(call_id: str, event: str = STARTED) -> dict[str, Any]:
    """A call object with what trips serialisers: non-ASCII text, integral and fractional floats,
    nested lists, keys that JavaScript enumerates first."""
    return {
        "call_id": call_id,
        "call_type": "web_call",
        "agent_id": "agent_9c1f",
        "call_status": "ended" if event != STARTED else "ongoing",
        "metadata": {"customer": "Zoë Łukasiewicz — 東京 🎧", "score": 1.0, "ratio": 0.5, "10": "b", "2": "a"},
        "latency": {"e2e": {"p50": 812.0, "values": [640.5, 812.0, 1020.25]}},
        "transcript": "Agent: Grüß Gott!\nUser: ¿Qué tal?",
        "start_timestamp": 1_763_900_000_123,
        "opt_out_sensitive_data_storage": False,
        "call_analysis": None,
    }


def label(seen: Seen) -> str:
    body = json.loads(seen.text)
    return f"{body['call']['call_id']}:{body['event']}"


def signed_at(seen: Seen) -> int:
    match = re.fullmatch(r"v=(\d+),d=[0-9a-f]{64}", seen.headers["x-retell-signature"])
    assert match, seen.headers["x-retell-signature"]
    return int(match.group(1))


def assert_verified(requests: list[Seen]) -> None:
    """Every request passes the official Python verifier (which also refuses stale timestamps)."""
    for seen in requests:
        assert verify(seen.text, api_key=KEY, signature=seen.headers["x-retell-signature"]), label(seen)


async def eventually(check: Callable[[], Any], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def rows(db: Database, call_id: str) -> list[OutboxEvent]:
    return await Outbox(db).for_call(call_id)


# --- the request ---------------------------------------------------------------------------------------


@on_session_loop
async def test_body_is_the_compact_call_object_and_signed_at_send_time(db_url: str) -> None:
    call = call_object("call_body")
    snapshot = copy.deepcopy(call)
    with running_tool_server() as receiver:
        async with open_db(db_url) as db, running(db) as dispatcher:
            enqueued_at = int(time.time() * 1000)
            await dispatcher.enqueue("call_body", STARTED, receiver.url + "/hooks/retell", call)
            call["call_status"] = "ended"  # later changes are not the event's
            await dispatcher.drain(10)
            [row] = await rows(db, "call_body")
        [seen] = receiver.requests

    assert (seen.method, seen.path) == ("POST", "/hooks/retell")
    assert seen.headers["content-type"] == "application/json"
    assert seen.text == compact_json({"event": STARTED, "call": snapshot, "data": snapshot})
    assert json.loads(seen.text) == {"event": STARTED, "call": snapshot, "data": snapshot}
    assert '"score":1,"ratio":0.5' in seen.text and "Zoë Łukasiewicz — 東京 🎧" in seen.text
    assert '"metadata":{"2":"a","10":"b",' in seen.text  # JavaScript's key order
    # What a Python receiver re-serialises is the same text, so its signature check passes too.
    assert json.dumps(json.loads(seen.text), separators=(",", ":"), ensure_ascii=False) == seen.text
    assert_verified([seen])
    assert enqueued_at <= signed_at(seen) <= int(time.time() * 1000)
    assert not verify(seen.text.replace("ongoing", "ended"), api_key=KEY, signature=seen.headers["x-retell-signature"])
    assert (row.attempts, row.last_status, row.last_error, row.given_up_at) == (1, 200, None, None)
    assert row.delivered_at is not None and row.body == seen.text


# --- retries, order, independence, giving up -------------------------------------------------------------


@on_session_loop
async def test_a_recovering_receiver_gets_each_event_once_in_order(db_url: str) -> None:
    with running_tool_server() as receiver:
        receiver.script(Reply(status=500), Reply(status=503), Reply(status=204))
        async with open_db(db_url) as db, running(db) as dispatcher:
            for event in EVENTS:
                await dispatcher.enqueue("call_a", event, receiver.url, call_object("call_a", event))
            await dispatcher.settle(10)
            settled = await rows(db, "call_a")
        seen = list(receiver.requests)

    a1, a2, a3 = (f"call_a:{event}" for event in EVENTS)
    assert [label(s) for s in seen] == [a1, a1, a1, a2, a3]
    assert_verified(seen)  # retries too: each signed afresh
    stamps = [signed_at(s) for s in seen]
    assert stamps == sorted(stamps) and stamps[0] < stamps[2]
    assert len({s.headers["x-retell-signature"] for s in seen}) == len(seen)
    assert [(r.event, r.attempts, r.last_status) for r in settled] == [
        (STARTED, 3, 204),
        (TRANSCRIPT, 1, 200),
        (ENDED, 1, 200),
    ]
    assert all(r.delivered_at is not None and r.given_up_at is None and r.last_error is None for r in settled)
    assert [r.id for r in settled] == sorted(r.id for r in settled)


@on_session_loop
async def test_a_failing_receiver_does_not_hold_up_other_calls(db_url: str) -> None:
    with running_tool_server() as failing, running_tool_server() as healthy:
        failing.script(*[Reply(status=500, delay=0.3)] * 4)
        async with open_db(db_url) as db, running(db, max_attempts=4) as dispatcher:
            await dispatcher.enqueue("call_a", STARTED, failing.url, call_object("call_a"))
            await dispatcher.enqueue("call_a", ENDED, failing.url, call_object("call_a", ENDED))
            for event in EVENTS:
                await dispatcher.enqueue("call_b", event, healthy.url, call_object("call_b", event))
            await dispatcher.settle(15)
            a_rows, b_rows = await rows(db, "call_a"), await rows(db, "call_b")

    assert [label(s) for s in healthy.requests] == [f"call_b:{event}" for event in EVENTS]
    assert [label(s) for s in failing.requests] == [f"call_a:{STARTED}"] * 4 + [f"call_a:{ENDED}"]
    # Call B was done while call A's first event was still being retried.
    assert a_rows[0].given_up_at is not None
    assert all(r.delivered_at is not None and r.delivered_at < a_rows[0].given_up_at for r in b_rows)
    assert a_rows[1].delivered_at is not None and a_rows[1].delivered_at >= a_rows[0].given_up_at
    assert_verified(failing.requests + healthy.requests)


@on_session_loop
async def test_gives_up_after_max_attempts_and_then_sends_the_next_event(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="voxline.webhooks")
    with running_tool_server() as receiver:
        receiver.script(*[Reply(status=502)] * 3)
        async with open_db(db_url) as db, running(db, max_attempts=3) as dispatcher:
            await dispatcher.enqueue("call_g", STARTED, receiver.url, call_object("call_g"))
            await dispatcher.enqueue("call_g", ENDED, receiver.url, call_object("call_g", ENDED))
            await dispatcher.settle(10)
            first, second = await rows(db, "call_g")

    assert [label(s) for s in receiver.requests] == [f"call_g:{STARTED}"] * 3 + [f"call_g:{ENDED}"]
    assert (first.attempts, first.last_status, first.last_error, first.delivered_at) == (3, 502, "HTTP 502", None)
    assert first.given_up_at is not None
    assert (second.attempts, second.last_status, second.given_up_at) == (1, 200, None)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all("call_g" in m and STARTED in m and "127.0.0.1" in m and "HTTP 502" in m for m in warnings)
    [given_up] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "call_g" in given_up and STARTED in given_up and "given up after 3 attempts" in given_up


def test_backoff_doubles_is_capped_and_jittered() -> None:
    for attempt in range(1, 12):
        expected = min(60.0, 2 ** (attempt - 1))
        delays = [backoff_s(attempt, base_s=1.0, max_s=60.0) for _ in range(50)]
        assert all(expected / 2 <= d <= expected for d in delays)
        assert len(set(delays)) > 1


@on_session_loop
async def test_two_dispatchers_on_one_database_send_each_event_once_in_order(db_url: str) -> None:
    """As two server processes would: each event is claimed by one of them, per-call order holds."""
    calls = [f"call_{n}" for n in range(6)]
    with running_tool_server() as receiver:
        receiver.script(*[Reply(status=500)] * 4)
        async with open_db(db_url) as db_one, open_db(db_url) as db_two:
            async with running(db_one, concurrency=3) as one, running(db_two, concurrency=3) as two:
                for event in EVENTS:
                    for n, call_id in enumerate(calls):
                        await (one if n % 2 else two).enqueue(call_id, event, receiver.url, call_object(call_id, event))
                await one.settle(15)
                await two.settle(15)
            settled = [row for call_id in calls for row in await rows(db_one, call_id)]

    assert all(row.delivered_at is not None for row in settled)
    delivered = [label(s) for s in receiver.requests[4:]]
    assert sorted(delivered) == sorted(f"{call_id}:{event}" for call_id in calls for event in EVENTS)
    for call_id in calls:
        assert [d for d in delivered if d.startswith(call_id + ":")] == [f"{call_id}:{event}" for event in EVENTS]
    assert sum(row.attempts for row in settled) == len(receiver.requests)


# --- durability ---------------------------------------------------------------------------------------


@on_session_loop
async def test_events_survive_a_restart(db_url: str) -> None:
    """Stop the dispatcher and close the database with one event failed (retry pending), one sent
    but unanswered (in flight) and one never tried; new ones on the same database deliver all."""
    a1, a2, b1 = f"call_a:{STARTED}", f"call_a:{ENDED}", f"call_b:{STARTED}"
    with running_tool_server() as receiver_a, running_tool_server() as receiver_b:
        receiver_a.script(Reply(status=503), Reply(status=503))  # down
        receiver_b.script(Reply(status=204, delay=5))  # accepts, answers too late
        async with open_db(db_url) as db:
            async with running(db, retry_base_s=1.0, retry_max_s=1.0) as dispatcher:
                await dispatcher.enqueue("call_a", STARTED, receiver_a.url, call_object("call_a"))
                await dispatcher.enqueue("call_a", ENDED, receiver_a.url, call_object("call_a", ENDED))
                await dispatcher.enqueue("call_b", STARTED, receiver_b.url, call_object("call_b"))
                await eventually(lambda: len(receiver_b.requests) == 1)
                await eventually(lambda: _attempts(db, "call_a", 0))
            stopped_at = int(time.time() * 1000)
            [b_row] = await rows(db, "call_b")
            # The unanswered attempt was handed back: due at once, not counted, not given up.
            assert (b_row.attempts, b_row.delivered_at, b_row.given_up_at) == (0, None, None)
            assert b_row.next_attempt_at <= stopped_at
            assert (await rows(db, "call_a"))[1].attempts == 0
        receiver_a.script()  # back up

        async with open_db(db_url) as db, running(db) as dispatcher:
            await dispatcher.settle(15)
            a_rows, [b_row] = await rows(db, "call_a"), await rows(db, "call_b")

    failed = [label(s) for s in receiver_a.requests[:-2]]
    assert failed and set(failed) == {a1}
    assert [label(s) for s in receiver_a.requests[-2:]] == [a1, a2]
    assert [label(s) for s in receiver_b.requests] == [b1, b1]  # cut off once, then delivered
    assert [r.attempts for r in a_rows] == [len(failed) + 1, 1] and b_row.attempts == 1
    assert all(r.delivered_at is not None for r in [*a_rows, b_row])
    assert_verified(receiver_a.requests + receiver_b.requests)


async def _attempts(db: Database, call_id: str, index: int) -> bool:
    return (await rows(db, call_id))[index].attempts >= 1


@on_session_loop
async def test_nothing_is_sent_again_after_a_restart(db_url: str) -> None:
    with running_tool_server() as receiver:
        async with open_db(db_url) as db, running(db) as dispatcher:
            await dispatcher.enqueue("call_r", STARTED, receiver.url, call_object("call_r"))
            await dispatcher.enqueue("call_r", TRANSCRIPT, receiver.url, call_object("call_r", TRANSCRIPT))
            await dispatcher.settle(10)
        async with open_db(db_url) as db, running(db) as dispatcher:
            await asyncio.sleep(0.35)  # a few polls of the new loop
            await dispatcher.enqueue("call_r", ENDED, receiver.url, call_object("call_r", ENDED))
            await dispatcher.drain(10)
            await dispatcher.settle(10)
    assert [label(s) for s in receiver.requests] == [f"call_r:{event}" for event in EVENTS]


# --- the address guard ---------------------------------------------------------------------------------


@on_session_loop
async def test_a_refused_address_is_given_up_at_once_with_the_reason(db_url: str) -> None:
    with running_tool_server() as receiver:
        async with open_db(db_url) as db, running(db, allow_private=False) as dispatcher:
            await dispatcher.enqueue("call_x", STARTED, receiver.url + "/hook", call_object("call_x"))
            await dispatcher.enqueue("call_x", ENDED, f"http://localhost:{receiver.port}/", call_object("call_x"))
            await dispatcher.settle(10)
            refused = await rows(db, "call_x")
    assert receiver.requests == []
    assert [(r.attempts, r.last_status, r.delivered_at) for r in refused] == [(1, None, None), (1, None, None)]
    assert all(
        r.given_up_at is not None and (r.last_error or "").startswith("refused by the address guard") for r in refused
    )
    assert "127.0.0.1 is a loopback address" in (refused[0].last_error or "")
    assert "localhost is a loopback name" in (refused[1].last_error or "")


# --- the schema ------------------------------------------------------------------------------------------


@on_session_loop
async def test_the_migration_creates_the_modelled_table(db_url: str) -> None:
    def differences(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, Base.metadata) if "webhook_outbox" in repr(d)]

    async with open_db(db_url) as db:
        assert await db.read(differences) == []


# --- the official Node verifier ------------------------------------------------------------------------


@pytest.mark.skipif(
    not NODE_READY and not os.environ.get("VOXLINE_TEST_NODE_REQUIRED"),
    reason="node or tests/node/node_modules is missing: run scripts/setup-node (scripts/test does, and requires it)",
)
@on_session_loop
async def test_the_official_node_verifier_accepts_every_delivery(sqlite_url: str) -> None:
    with running_tool_server() as receiver:
        receiver.script(Reply(status=500))  # one retry, signed again
        async with open_db(sqlite_url) as db, running(db) as dispatcher:
            for event in EVENTS:
                await dispatcher.enqueue("call_n", event, receiver.url, call_object("call_n", event))
            await dispatcher.enqueue("call_m", ENDED, receiver.url, {"call_id": "call_m", "duration_ms": 1.0, "x": 0.5})
            await dispatcher.settle(10)
        delivered = list(receiver.requests)
    assert len(delivered) == 5

    def item(body: str, seen: Seen, *, reserialize: bool = False) -> dict[str, Any]:
        signature = seen.headers["x-retell-signature"]
        return {"body": body, "signature": signature, "api_key": KEY, "reserialize": reserialize}

    genuine = [item(s.text, s) for s in delivered] + [item(s.text, s, reserialize=True) for s in delivered]
    tampered = [
        item(delivered[0].text.replace("Zoë", "Zoe"), delivered[0]),
        item(delivered[-1].text.replace("0.5", "0.6"), delivered[-1], reserialize=True),
        {**item(delivered[1].text, delivered[1]), "api_key": KEY + "0"},
    ]
    assert node_verify(genuine + tampered) == [True] * len(genuine) + [False] * len(tampered)
