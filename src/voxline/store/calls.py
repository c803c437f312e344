"""Call repository: rows, state transitions as single conditional UPDATEs, and list filters in SQL."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    String,
    and_,
    bindparam,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    update,
)

from voxline.schemas.call import (
    BooleanFilter,
    CallFilterCriteria,
    EnumFilter,
    KeyedFilter,
    LegacyCallFilterCriteria,
    NumberFilter,
    PresentFilter,
    RangeFilter,
    StringFilter,
    Threshold,
)
from voxline.store.database import Database
from voxline.store.tables import Call, LiveProcess

CALLS = Call.__table__
C = CALLS.c
PROCESSES = LiveProcess.__table__
CALL_BY_ID = select(CALLS).where(C.call_id == bindparam("call_id"))
ONGOING_COUNT = select(func.count()).select_from(CALLS).where(C.call_status == "ongoing")
_JOIN_LOCK_ID = 0x766F786A6F696E  # "voxjoin"
INSERT_CALL = insert(CALLS)


@dataclass
class CallRecord:
    """One row of `calls`, as the service reads and changes it."""

    call_id: str
    call_type: str
    agent_id: str
    agent_version: int
    call_status: str
    disconnection_reason: str | None
    created_at: int
    start_timestamp: int | None
    end_timestamp: int | None
    duration_ms: int | None
    join_deadline: int
    """When the access token expires; a call still registered then ends as error_user_not_joined."""
    token_nonce: str
    user_sentiment: str | None
    call_successful: bool | None
    in_voicemail: bool | None
    data_storage_setting: str
    call_metadata: dict[str, Any] | None
    dynamic_variables: dict[str, Any] | None
    data: dict[str, Any]
    config: dict[str, Any]
    live_owner: str | None = None
    purge_at: int | None = None
    """When the transcript, analysis text and files go (the agent's data_storage_retention_days)."""

    @classmethod
    def from_row(cls, row: Any) -> "CallRecord":
        return cls(**row._mapping)

    def values(self) -> dict[str, Any]:
        """Column values (shallow: the JSON documents are not copied)."""
        return {name: getattr(self, name) for name in _FIELD_NAMES}


_FIELD_NAMES = tuple(f.name for f in fields(CallRecord))


def _string(column: Any, f: StringFilter) -> ColumnElement[bool]:
    value = f.value
    return {
        "eq": lambda: column == value,
        "ne": lambda: column != value,
        "sw": lambda: column.startswith(value, autoescape=True),
        "ew": lambda: column.endswith(value, autoescape=True),
        "co": lambda: column.contains(value, autoescape=True),
    }[f.op]()


def _number(column: Any, f: NumberFilter | RangeFilter) -> ColumnElement[bool]:
    if isinstance(f, RangeFilter):
        low, high = f.value
        return column.between(low, high)
    value = f.value
    return {
        "eq": lambda: column == value,
        "ne": lambda: column != value,
        "gt": lambda: column > value,
        "ge": lambda: column >= value,
        "lt": lambda: column < value,
        "le": lambda: column <= value,
    }[f.op]()


class CallRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- JSON key access that behaves the same on SQLite and PostgreSQL ----------------------

    def _field(self, column: Any, key: str) -> tuple[Any, Any]:
        """(JSON type, value) of `column[key]`; the type is one of string, number, boolean, null,
        object, array, or NULL when the key is absent. Values are only compared after a type check,
        so a string "5" never meets a number filter and no cast can fail."""
        if self._db.is_sqlite:
            each = func.json_each(column).table_valued("key", "value", "type")
            raw_type = select(each.c.type).where(each.c.key == key).scalar_subquery()
            value = select(each.c.value).where(each.c.key == key).scalar_subquery()
            kind = case(
                (raw_type == "text", "string"),
                (raw_type.in_(["integer", "real"]), "number"),
                (raw_type.in_(["true", "false"]), "boolean"),
                else_=raw_type,
            )
            return kind, value
        return func.json_typeof(column[key]), column[key].as_string()

    def _keyed(self, column: Any, filters: Iterable[KeyedFilter]) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        for f in filters:
            kind, value = self._field(column, f.key)
            if isinstance(f, PresentFilter):
                present = and_(kind.is_not(None), kind != "null")
                conditions.append(present if f.op == "pr" else ~present | kind.is_(None))
            elif isinstance(f, BooleanFilter):
                truth = "1" if self._db.is_sqlite else "true"
                conditions.append(and_(kind == "boolean", (cast(value, String) == truth) == f.value))
            elif isinstance(f, NumberFilter | RangeFilter):
                number = case((kind == "number", cast(value, Float)), else_=None)
                conditions.append(_number(number, f))
            elif isinstance(f, EnumFilter):
                conditions.append(and_(kind == "string", value.in_(f.value)))
            else:
                conditions.append(and_(kind == "string", _string(value, f)))
        return conditions

    def conditions(self, criteria: CallFilterCriteria | None) -> list[ColumnElement[bool]]:
        if criteria is None:
            return []
        out: list[ColumnElement[bool]] = []
        if criteria.agent is not None:
            options = [
                and_(C.agent_id == a.agent_id, C.agent_version.in_(a.version) if a.version else True)
                for a in criteria.agent
            ]
            out.append(or_(*options) if options else false())
        if isinstance(criteria.call_id, EnumFilter):
            out.append(C.call_id.in_(criteria.call_id.value))
        elif criteria.call_id is not None:
            out.append(_string(C.call_id, criteria.call_id))
        for name in (
            "call_status",
            "call_type",
            "disconnection_reason",
            "user_sentiment",
            "data_storage_setting",
        ):
            f = getattr(criteria, name)
            if f is not None:
                out.append(getattr(C, name).in_(f.value))
        for name in ("call_successful", "in_voicemail"):
            f = getattr(criteria, name)
            if f is not None:
                out.append(getattr(C, name) == f.value)
        for name in ("start_timestamp", "end_timestamp", "duration_ms"):
            f = getattr(criteria, name)
            if f is not None:
                out.append(_number(getattr(C, name), f))
        out += self._keyed(C.call_metadata, criteria.metadata or [])
        out += self._keyed(C.dynamic_variables, criteria.dynamic_variables or [])
        return out

    def legacy_conditions(self, criteria: LegacyCallFilterCriteria | None) -> list[ColumnElement[bool]]:
        if criteria is None:
            return []
        out: list[ColumnElement[bool]] = []
        lists = {
            "agent_id": C.agent_id,
            "version": C.agent_version,
            "call_id": C.call_id,
            "call_status": C.call_status,
            "call_type": C.call_type,
            "disconnection_reason": C.disconnection_reason,
            "user_sentiment": C.user_sentiment,
            "call_successful": C.call_successful,
            "in_voicemail": C.in_voicemail,
        }
        for name, column in lists.items():
            values = getattr(criteria, name)
            if values is not None:
                out.append(column.in_(values))
        for name in ("start_timestamp", "end_timestamp", "duration_ms"):
            threshold: Threshold | None = getattr(criteria, name)
            if threshold is not None:
                column = getattr(C, name)
                if threshold.lower_threshold is not None:
                    out.append(column >= threshold.lower_threshold)
                if threshold.upper_threshold is not None:
                    out.append(column <= threshold.upper_threshold)
        for column, mapping in (
            (C.call_metadata, criteria.metadata),
            (C.dynamic_variables, criteria.dynamic_variables),
        ):
            for key, values in (mapping or {}).items():
                kind, value = self._field(column, key)
                out.append(and_(kind == "string", value.in_(values)))
        return out

    # --- reads ----------------------------------------------------------------------------------

    async def get(self, call_id: str) -> CallRecord | None:
        row = await self._db.read(lambda conn: conn.execute(CALL_BY_ID, {"call_id": call_id}).first())
        return CallRecord.from_row(row) if row is not None else None

    async def select(
        self,
        conditions: list[ColumnElement[bool]],
        *,
        descending: bool,
        limit: int,
        after: ColumnElement[bool] | None = None,
        offset: int | None = None,
    ) -> list[CallRecord]:
        order = (C.created_at.desc(), C.call_id.desc()) if descending else (C.created_at, C.call_id)
        query = select(CALLS).where(*conditions)
        if after is not None:
            query = query.where(after)
        query = query.order_by(*order).limit(limit)
        if offset:
            query = query.offset(offset)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [CallRecord.from_row(r) for r in rows]

    async def count(self, conditions: list[ColumnElement[bool]]) -> int:
        query = select(func.count()).select_from(CALLS).where(*conditions)
        return int(await self._db.read(lambda conn: conn.execute(query).scalar()) or 0)

    async def due_for_purge(self, now_ms: int, limit: int = 100) -> list[str]:
        """Ended calls whose retention period is over (oldest first)."""
        query = select(C.call_id).where(C.purge_at.is_not(None), C.purge_at <= now_ms).order_by(C.purge_at).limit(limit)
        return [r.call_id for r in await self._db.read(lambda conn: conn.execute(query).all())]

    async def count_ongoing(self) -> int:
        return await self.count([C.call_status == "ongoing"])

    # --- writes ---------------------------------------------------------------------------------

    async def insert(self, record: CallRecord) -> None:
        values = record.values()
        await self._db.write(lambda conn: conn.execute(INSERT_CALL, values))

    async def modify(self, call_id: str, change: Callable[[CallRecord], None]) -> CallRecord | None:
        """Apply `change` to the row in one write transaction and store what it changed; None if
        there is no such call. `change` may raise to leave the row untouched."""
        return await self._db.write(lambda conn: self._modify(conn, call_id, change))

    async def modify_counting_ongoing(
        self, call_id: str, change: Callable[[CallRecord, int], None]
    ) -> CallRecord | None:
        """`modify`, with the number of ongoing calls passed to `change`, counted in the same
        transaction under a lock (SQLite: the write lock; PostgreSQL: an advisory lock), so two
        joins in any processes cannot both take the last slot."""

        def work(conn: Connection) -> CallRecord | None:
            if not self._db.is_sqlite:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_JOIN_LOCK_ID})")
            ongoing = int(conn.execute(ONGOING_COUNT).scalar() or 0)
            return self._modify(conn, call_id, lambda record: change(record, ongoing))

        return await self._db.write(work)

    def _modify(self, conn: Connection, call_id: str, change: Callable[[CallRecord], None]) -> CallRecord | None:
        query = select(CALLS).where(C.call_id == call_id)
        row = conn.execute(query if self._db.is_sqlite else query.with_for_update()).first()
        if row is None:
            return None
        before = dict(row._mapping)
        record = CallRecord(**before)
        change(record)
        changed = {k: v for k, v in record.values().items() if v != before[k]}
        if changed:
            conn.execute(update(CALLS).where(C.call_id == call_id).values(changed))
        return record

    async def delete(self, call_id: str, check: Callable[[CallRecord], None]) -> bool:
        """Delete the call if `check` (which may raise) allows it; False if there is no such call."""

        def work(conn: Connection) -> bool:
            row = conn.execute(select(CALLS).where(C.call_id == call_id)).first()
            if row is None:
                return False
            check(CallRecord.from_row(row))
            conn.execute(delete(CALLS).where(C.call_id == call_id))
            return True

        return await self._db.write(work)

    async def heartbeat(self, owner: str, now_ms: int) -> None:
        """Say that process `owner` is alive (and runs its ongoing calls)."""

        def work(conn: Connection) -> None:
            done = conn.execute(update(PROCESSES).where(PROCESSES.c.owner == owner).values(heartbeat_at=now_ms))
            if done.rowcount == 0:
                conn.execute(insert(PROCESSES).values(owner=owner, heartbeat_at=now_ms))

        await self._db.write(work)

    async def end_orphaned(self, now_ms: int, stale_ms: int) -> list[str]:
        """End ongoing calls whose process stopped heartbeating (it crashed or was killed):
        `error_unknown`, ended now. Forget the stale processes."""
        alive = select(PROCESSES.c.owner).where(PROCESSES.c.heartbeat_at >= now_ms - stale_ms)
        statement = (
            update(CALLS)
            .where(C.call_status == "ongoing", or_(C.live_owner.is_(None), C.live_owner.not_in(alive)))
            .values(
                call_status="error",
                disconnection_reason="error_unknown",
                end_timestamp=now_ms,
                duration_ms=now_ms - func.coalesce(C.start_timestamp, now_ms),
            )
            .returning(C.call_id)
        )

        def work(conn: Connection) -> list[str]:
            ended = list(conn.execute(statement).scalars().all())
            conn.execute(delete(PROCESSES).where(PROCESSES.c.heartbeat_at < now_ms - stale_ms))
            return ended

        return await self._db.write(work)

    async def end_overdue_registered(self, now_ms: int) -> list[str]:
        """End every registered call whose join deadline has passed, atomically, in any process."""
        statement = (
            update(CALLS)
            .where(C.call_status == "registered", C.join_deadline <= now_ms)
            .values(
                call_status="error",
                disconnection_reason="error_user_not_joined",
                end_timestamp=C.join_deadline,
                duration_ms=0,
            )
            .returning(C.call_id)
        )
        return await self._db.write(lambda conn: list(conn.execute(statement).scalars().all()))
