"""Retell LLM repository: versions of a prompt-LLM configuration."""

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from voxline.clock import Clock
from voxline.errors import BadRequest, NotFound
from voxline.ids import new_llm_id
from voxline.schemas.llm import LLM_DEFAULTS, LlmCreateRequest, LlmResponse, LlmUpdateRequest
from voxline.store.database import Database
from voxline.store.paging import encode_key, keyset_after, ordered
from voxline.store.tables import AgentVersion, RetellLlm, RetellLlmVersion


def _check_states(data: dict[str, Any]) -> None:
    states = data.get("states") or []
    names = [s["name"] for s in states]
    if len(set(names)) != len(names):
        raise BadRequest("states: state names must be unique")
    if states and data.get("starting_state") is None:
        raise BadRequest("starting_state: required when states are given")
    if data.get("starting_state") is not None and data["starting_state"] not in names:
        raise BadRequest(f"starting_state: no state named {data['starting_state']!r}")
    for state in states:
        for edge in state.get("edges") or []:
            if edge["destination_state_name"] not in names:
                raise BadRequest(
                    f"states: edge of {state['name']!r} leads to unknown state {edge['destination_state_name']!r}"
                )


def _response(row: RetellLlmVersion) -> LlmResponse:
    return LlmResponse.model_validate(
        {
            **row.data,
            "llm_id": row.llm_id,
            "version": row.version,
            "is_published": row.is_published,
            "last_modification_timestamp": row.last_modification_timestamp,
        }
    )


class LlmRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(self, request: LlmCreateRequest) -> LlmResponse:
        data = {**LLM_DEFAULTS, **request.to_wire()}
        _check_states(data)
        now = self._clock.now_ms()
        llm_id = new_llm_id()
        row = RetellLlmVersion(llm_id=llm_id, version=0, is_published=False, last_modification_timestamp=now, data=data)
        async with self._db.write() as session:
            session.add(RetellLlm(llm_id=llm_id, created_at=now, latest_version=0))
            await session.flush()
            session.add(row)
        return _response(row)

    async def _version_row(self, session: AsyncSession, llm_id: str, version: int | None) -> RetellLlmVersion:
        llm = await session.get(RetellLlm, llm_id)
        if llm is None:
            raise NotFound(f"Retell LLM {llm_id} not found")
        row = await session.get(RetellLlmVersion, (llm_id, llm.latest_version if version is None else version))
        if row is None:
            raise NotFound(f"Retell LLM {llm_id} has no version {version}")
        return row

    async def get(self, llm_id: str, version: int | None = None) -> LlmResponse:
        async with self._db.read() as session:
            return _response(await self._version_row(session, llm_id, version))

    async def exists(self, llm_id: str, version: int | None = None) -> bool:
        try:
            await self.get(llm_id, version)
        except NotFound:
            return False
        return True

    async def update(self, llm_id: str, request: LlmUpdateRequest, version: int | None = None) -> LlmResponse:
        patch = request.model_dump(mode="json", exclude_unset=True, by_alias=True)
        async with self._db.write() as session:
            row = await self._version_row(session, llm_id, version)
            if row.is_published:
                raise BadRequest(f"version {row.version} of Retell LLM {llm_id} is published and read-only")
            data = dict(row.data)
            for key, value in patch.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            _check_states(data)
            row.data = data
            row.last_modification_timestamp = self._clock.now_ms()
        return _response(row)

    async def delete(self, llm_id: str, force: bool = False) -> None:
        async with self._db.write() as session:
            if await session.get(RetellLlm, llm_id) is None:
                raise NotFound(f"Retell LLM {llm_id} not found")
            users = (
                await session.scalars(
                    select(AgentVersion.agent_id).where(AgentVersion.llm_id == llm_id).distinct().limit(5)
                )
            ).all()
            if users and not force:
                raise BadRequest(
                    f"Retell LLM {llm_id} is used by agent(s) {', '.join(users)}; "
                    "delete them first or pass force_delete=true"
                )
            await session.execute(delete(RetellLlmVersion).where(RetellLlmVersion.llm_id == llm_id))
            await session.execute(delete(RetellLlm).where(RetellLlm.llm_id == llm_id))

    async def key_after(self, llm_id: str) -> str:
        """A pagination key that continues after `llm_id` (legacy lists page by the last id)."""
        async with self._db.read() as session:
            llm = await session.get(RetellLlm, llm_id)
        if llm is None:
            raise BadRequest(f"pagination_key: no Retell LLM {llm_id}")
        return encode_key(llm.created_at, llm.llm_id)

    async def list(
        self, limit: int = 1000, pagination_key: str | None = None, descending: bool = True
    ) -> tuple[list[LlmResponse], str | None]:
        """Latest version of each LLM, newest first by default; returns (items, next key)."""
        query = select(RetellLlm, RetellLlmVersion).join(
            RetellLlmVersion,
            (RetellLlmVersion.llm_id == RetellLlm.llm_id) & (RetellLlmVersion.version == RetellLlm.latest_version),
        )
        if pagination_key:
            query = query.where(keyset_after(RetellLlm.created_at, RetellLlm.llm_id, pagination_key, descending))
        query = query.order_by(*ordered(RetellLlm.created_at, RetellLlm.llm_id, descending)).limit(limit + 1)
        async with self._db.read() as session:
            rows = (await session.execute(query)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        key = encode_key(rows[-1][0].created_at, rows[-1][0].llm_id) if more else None
        return [_response(v) for _, v in rows], key
