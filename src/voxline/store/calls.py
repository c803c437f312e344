"""Call repository: rows, state transitions as single conditional UPDATEs, and list filters in SQL."""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

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
from voxline.store.tables import Call


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

    def _json_text(self, column: Any, key: str) -> Any:
        return column[key].as_string()

    def _json_number(self, column: Any, key: str) -> Any:
        """The key's value as a number, or NULL when it is not a JSON number (never a cast error)."""
        if self._db.is_sqlite:
            is_number = func.json_type(column, "$." + _json_path_key(key)).in_(["integer", "real"])
        else:
            is_number = func.json_typeof(column[key]) == "number"
        return case((is_number, column[key].as_float()), else_=None)

    def _json_bool(self, column: Any, key: str) -> Any:
        if self._db.is_sqlite:
            kind = func.json_type(column, "$." + _json_path_key(key))
            return case((kind == "true", True), (kind == "false", False), else_=None)
        return case((func.json_typeof(column[key]) == "boolean", column[key].as_string() == "true"), else_=None)

    def _keyed(self, column: Any, filters: Iterable[KeyedFilter]) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        for f in filters:
            if isinstance(f, PresentFilter):
                present = self._json_text(column, f.key).is_not(None)
                conditions.append(present if f.op == "pr" else ~present | column.is_(None))
            elif isinstance(f, BooleanFilter):
                conditions.append(self._json_bool(column, f.key) == f.value)  # type: ignore[attr-defined]
            elif isinstance(f, NumberFilter | RangeFilter):
                conditions.append(_number(self._json_number(column, f.key), f))  # type: ignore[attr-defined]
            elif isinstance(f, EnumFilter):
                conditions.append(self._json_text(column, f.key).in_(f.value))  # type: ignore[attr-defined]
            else:
                conditions.append(_string(self._json_text(column, f.key), f))  # type: ignore[attr-defined]
        return conditions

    def conditions(self, criteria: CallFilterCriteria | None) -> list[ColumnElement[bool]]:
        if criteria is None:
            return []
        out: list[ColumnElement[bool]] = []
        if criteria.agent is not None:
            options = [
                and_(Call.agent_id == a.agent_id, Call.agent_version.in_(a.version) if a.version else True)
                for a in criteria.agent
            ]
            out.append(or_(*options) if options else false())
        if isinstance(criteria.call_id, EnumFilter):
            out.append(Call.call_id.in_(criteria.call_id.value))
        elif criteria.call_id is not None:
            out.append(_string(Call.call_id, criteria.call_id))
        for name in (
            "call_status",
            "call_type",
            "disconnection_reason",
            "user_sentiment",
            "data_storage_setting",
        ):
            f = getattr(criteria, name)
            if f is not None:
                out.append(getattr(Call, name).in_(f.value))
        for name in ("call_successful", "in_voicemail"):
            f = getattr(criteria, name)
            if f is not None:
                out.append(getattr(Call, name) == f.value)
        for name in ("start_timestamp", "end_timestamp", "duration_ms"):
            f = getattr(criteria, name)
            if f is not None:
                out.append(_number(getattr(Call, name), f))
        out += self._keyed(Call.call_metadata, criteria.metadata or [])
        out += self._keyed(Call.dynamic_variables, criteria.dynamic_variables or [])
        return out

    def legacy_conditions(self, criteria: LegacyCallFilterCriteria | None) -> list[ColumnElement[bool]]:
        if criteria is None:
            return []
        out: list[ColumnElement[bool]] = []
        lists = {
            "agent_id": Call.agent_id,
            "version": Call.agent_version,
            "call_id": Call.call_id,
            "call_status": Call.call_status,
            "call_type": Call.call_type,
            "disconnection_reason": Call.disconnection_reason,
            "user_sentiment": Call.user_sentiment,
            "call_successful": Call.call_successful,
            "in_voicemail": Call.in_voicemail,
        }
        for name, column in lists.items():
            values = getattr(criteria, name)
            if values is not None:
                out.append(column.in_(values))
        for name in ("start_timestamp", "end_timestamp", "duration_ms"):
            threshold: Threshold | None = getattr(criteria, name)
            if threshold is not None:
                column = getattr(Call, name)
                if threshold.lower_threshold is not None:
                    out.append(column >= threshold.lower_threshold)
                if threshold.upper_threshold is not None:
                    out.append(column <= threshold.upper_threshold)
        for column, mapping in (
            (Call.call_metadata, criteria.metadata),
            (Call.dynamic_variables, criteria.dynamic_variables),
        ):
            for key, values in (mapping or {}).items():
                out.append(self._json_text(column, key).in_(values))
        return out

    # --- reads ----------------------------------------------------------------------------------

    async def get(self, call_id: str) -> Call | None:
        async with self._db.read() as session:
            return await session.get(Call, call_id)

    async def select(
        self,
        conditions: list[ColumnElement[bool]],
        *,
        descending: bool,
        limit: int,
        after: ColumnElement[bool] | None = None,
        offset: int | None = None,
    ) -> list[Call]:
        order = (Call.created_at.desc(), Call.call_id.desc()) if descending else (Call.created_at, Call.call_id)
        query = select(Call).where(*conditions)
        if after is not None:
            query = query.where(after)
        query = query.order_by(*order).limit(limit)
        if offset:
            query = query.offset(offset)
        async with self._db.read() as session:
            return list((await session.scalars(query)).all())

    async def count(self, conditions: list[ColumnElement[bool]]) -> int:
        async with self._db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(Call).where(*conditions)) or 0)

    async def count_ongoing(self) -> int:
        return await self.count([Call.call_status == "ongoing"])

    # --- writes ---------------------------------------------------------------------------------

    async def insert(self, row: Call) -> None:
        async with self._db.write() as session:
            session.add(row)

    async def modify(self, call_id: str, change: Any) -> Call | None:
        """Apply `change(session, row)` to the row inside one write transaction; None if absent."""
        async with self._db.write() as session:
            row = await session.get(Call, call_id)
            if row is None:
                return None
            await change(session, row)
            return row

    async def end_overdue_registered(self, now_ms: int) -> list[str]:
        """End every registered call whose join deadline has passed, atomically, in any process."""
        statement = (
            update(Call)
            .where(Call.call_status == "registered", Call.join_deadline <= now_ms)
            .values(
                call_status="error",
                disconnection_reason="error_user_not_joined",
                end_timestamp=Call.join_deadline,
                duration_ms=0,
                join_deadline=None,
            )
            .returning(Call.call_id)
        )
        async with self._db.write() as session:
            return list((await session.scalars(statement)).all())

    async def delete(self, session: AsyncSession, row: Call) -> None:
        await session.delete(row)


def _json_path_key(key: str) -> str:
    """A key quoted for an SQLite JSON path (`$."my key"`)."""
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
