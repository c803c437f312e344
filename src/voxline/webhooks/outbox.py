"""The webhook outbox: a durable queue of events, sent in order per call.

Every change is one SQL statement in one transaction, so several dispatchers (processes) can share
the table:

- `due` lists only the *head* of each call (its oldest event neither delivered nor given up) whose
  time has come, so a call's next event waits until every earlier one is settled;
- `claim` takes an event for one attempt with a compare-and-set on `next_attempt_at`, which it
  moves to the end of a lease: no other dispatcher sends it meanwhile, and if the sender dies the
  event becomes due again when the lease runs out;
- `mark_delivered` / `record_failure` settle the attempt (`release` hands back an unfinished one).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, func, insert, select, update

from voxline.store.database import Database
from voxline.store.tables import WebhookOutbox

OUTBOX = WebhookOutbox.__table__
W = OUTBOX.c
_EARLIER = OUTBOX.alias("earlier")


def _pending(columns: Any) -> Any:
    return and_(columns.delivered_at.is_(None), columns.given_up_at.is_(None))


_IS_HEAD = ~exists().where(_EARLIER.c.call_id == W.call_id, _EARLIER.c.id < W.id, _pending(_EARLIER.c))
DUE = (
    select(OUTBOX)
    .where(_pending(W), W.next_attempt_at <= bindparam("now"), _IS_HEAD)
    .order_by(W.next_attempt_at, W.id)
    .limit(bindparam("limit"))
)
ANY_DUE = select(W.id).where(_pending(W), W.next_attempt_at <= bindparam("now"), _IS_HEAD).limit(1)
PENDING_COUNT = select(func.count()).select_from(OUTBOX).where(_pending(W))
CLAIM = (
    update(OUTBOX)
    .where(W.id == bindparam("event_id"), W.next_attempt_at == bindparam("expected"), _pending(W))
    .values(next_attempt_at=bindparam("lease_until"))
)
SETTLE = update(OUTBOX).where(W.id == bindparam("event_id"), _pending(W))
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class OutboxEvent:
    """One row of `webhook_outbox`."""

    id: int
    call_id: str
    event: str
    url: str
    body: str
    timeout_ms: int
    created_at: int
    attempts: int
    next_attempt_at: int
    delivered_at: int | None
    given_up_at: int | None
    last_error: str | None
    last_status: int | None

    @classmethod
    def from_row(cls, row: Any) -> "OutboxEvent":
        return cls(**row._mapping)


class Outbox:
    """Repository over `webhook_outbox`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, call_id: str, event: str, url: str, body: str, *, timeout_ms: int, now_ms: int) -> int:
        """Store an event, due at once; returns its id (the enqueue order)."""
        values = {
            "call_id": call_id,
            "event": event,
            "url": url,
            "body": body,
            "timeout_ms": timeout_ms,
            "created_at": now_ms,
            "attempts": 0,
            "next_attempt_at": now_ms,
        }

        def work(conn: Connection) -> int:
            return int(conn.execute(insert(OUTBOX).values(values)).inserted_primary_key[0])

        return await self.db.write(work)

    async def due(self, now_ms: int, limit: int) -> list[OutboxEvent]:
        """Events that may be sent now: at most one per call, the call's oldest unsettled one."""

        def work(conn: Connection) -> list[OutboxEvent]:
            return [OutboxEvent.from_row(row) for row in conn.execute(DUE, {"now": now_ms, "limit": limit})]

        return await self.db.read(work)

    async def any_due(self, now_ms: int) -> bool:
        return await self.db.read(lambda conn: conn.execute(ANY_DUE, {"now": now_ms}).first() is not None)

    async def pending_count(self) -> int:
        """Events neither delivered nor given up (due, leased or waiting for a retry)."""
        return await self.db.read(lambda conn: int(conn.execute(PENDING_COUNT).scalar_one()))

    async def claim(self, event: OutboxEvent, lease_until_ms: int) -> bool:
        """Take `event` for one attempt, unless someone else took or settled it since it was read."""
        params = {"event_id": event.id, "expected": event.next_attempt_at, "lease_until": lease_until_ms}
        return await self.db.write(lambda conn: conn.execute(CLAIM, params).rowcount == 1)

    async def mark_delivered(self, event_id: int, *, now_ms: int, status: int) -> None:
        statement = SETTLE.values(
            delivered_at=now_ms, last_status=status, last_error=None, attempts=W.attempts + 1, next_attempt_at=now_ms
        )
        await self.db.write(lambda conn: conn.execute(statement, {"event_id": event_id}))

    async def record_failure(
        self, event_id: int, *, now_ms: int, error: str, status: int | None, retry_at_ms: int | None
    ) -> None:
        """Count a failed attempt; retry at `retry_at_ms`, or give the event up when it is None."""
        values: dict[str, Any] = {
            "attempts": W.attempts + 1,
            "last_error": error[:MAX_ERROR_CHARS],
            "last_status": status,
        }
        if retry_at_ms is None:
            values.update(given_up_at=now_ms, next_attempt_at=now_ms)
        else:
            values["next_attempt_at"] = retry_at_ms
        statement = SETTLE.values(values)
        await self.db.write(lambda conn: conn.execute(statement, {"event_id": event_id}))

    async def release(self, leases: Iterable[tuple[int, int]], *, now_ms: int) -> None:
        """Hand back unfinished attempts ((event id, lease end) pairs): due again at once, not counted."""
        params = [{"event_id": event_id, "expected": lease, "lease_until": now_ms} for event_id, lease in leases]
        if params:
            await self.db.write(lambda conn: conn.execute(CLAIM, params))

    async def get(self, event_id: int) -> OutboxEvent | None:
        statement = select(OUTBOX).where(W.id == event_id)

        def work(conn: Connection) -> OutboxEvent | None:
            row = conn.execute(statement).first()
            return OutboxEvent.from_row(row) if row else None

        return await self.db.read(work)

    async def for_call(self, call_id: str) -> list[OutboxEvent]:
        """A call's events in enqueue order, settled ones included."""
        statement = select(OUTBOX).where(W.call_id == call_id).order_by(W.id)
        return await self.db.read(lambda conn: [OutboxEvent.from_row(row) for row in conn.execute(statement)])
