"""Retell LLM repository: versions of a prompt-LLM configuration."""

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from voxline.clock import Clock
from voxline.errors import BadRequest
from voxline.ids import new_llm_id
from voxline.schemas.llm import LLM_DEFAULTS, LlmCreateRequest, LlmResponse, LlmUpdateRequest
from voxline.store.database import Database
from voxline.store.paging import encode_key, keyset_after, ordered
from voxline.store.tables import AgentVersion, RetellLlm, RetellLlmVersion
from voxline.store.versions import Versioned

LLMS = RetellLlm.__table__
VERSIONS = RetellLlmVersion.__table__
AGENT_VERSIONS = AgentVersion.__table__


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


def _response(version: Any) -> LlmResponse:
    v = version if isinstance(version, dict) else version._mapping
    return LlmResponse.model_validate(
        {
            **v["data"],
            "llm_id": v["llm_id"],
            "version": v["version"],
            "is_published": v["is_published"],
            "last_modification_timestamp": v["last_modification_timestamp"],
        }
    )


LLM = Versioned(LLMS, VERSIONS, "llm_id", "Retell LLM")
_llm = LLM.parent
_version = LLM.version


class LlmRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(self, request: LlmCreateRequest) -> LlmResponse:
        data = {**LLM_DEFAULTS, **request.to_wire()}
        _check_states(data)
        now = self._clock.now_ms()
        llm_id = new_llm_id()
        version = {
            "llm_id": llm_id,
            "version": 0,
            "is_published": False,
            "last_modification_timestamp": now,
            "data": data,
        }

        def work(conn: Connection) -> None:
            conn.execute(insert(LLMS).values(llm_id=llm_id, created_at=now, latest_version=0))
            conn.execute(insert(VERSIONS).values(version))

        await self._db.write(work)
        return _response(version)

    async def get(self, llm_id: str, version: int | None = None) -> LlmResponse:
        return _response(await self._db.read(lambda conn: _version(conn, llm_id, version)))

    async def update(self, llm_id: str, request: LlmUpdateRequest, version: int | None = None) -> LlmResponse:
        patch = request.model_dump(mode="json", exclude_unset=True, by_alias=True)
        now = self._clock.now_ms()

        def work(conn: Connection) -> LlmResponse:
            row = _version(conn, llm_id, version)
            if row.is_published:
                raise BadRequest(f"version {row.version} of Retell LLM {llm_id} is published and read-only")
            data = dict(row.data)
            for key, value in patch.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            _check_states(data)
            conn.execute(
                update(VERSIONS)
                .where(VERSIONS.c.llm_id == llm_id, VERSIONS.c.version == row.version)
                .values(data=data, last_modification_timestamp=now)
            )
            return _response({**row._mapping, "data": data, "last_modification_timestamp": now})

        return await self._db.write(work)

    async def delete(self, llm_id: str, force: bool = False) -> None:
        def work(conn: Connection) -> None:
            _llm(conn, llm_id)
            users = (
                conn.execute(
                    select(AGENT_VERSIONS.c.agent_id).where(AGENT_VERSIONS.c.llm_id == llm_id).distinct().limit(5)
                )
                .scalars()
                .all()
            )
            if users and not force:
                raise BadRequest(
                    f"Retell LLM {llm_id} is used by agent(s) {', '.join(users)}; "
                    "delete them first or pass force_delete=true"
                )
            conn.execute(delete(VERSIONS).where(VERSIONS.c.llm_id == llm_id))
            conn.execute(delete(LLMS).where(LLMS.c.llm_id == llm_id))

        await self._db.write(work)

    async def key_after(self, llm_id: str) -> str:
        """A pagination key that continues after `llm_id` (legacy lists page by the last id)."""
        llm = await self._db.read(lambda conn: conn.execute(select(LLMS).where(LLMS.c.llm_id == llm_id)).first())
        if llm is None:
            raise BadRequest(f"pagination_key: no Retell LLM {llm_id}")
        return encode_key(llm.created_at, llm.llm_id)

    async def list(
        self, limit: int = 1000, pagination_key: str | None = None, descending: bool = True
    ) -> tuple[list[LlmResponse], str | None]:
        """Latest version of each LLM, newest first by default; returns (items, next key)."""
        query = select(VERSIONS, LLMS.c.created_at).join(
            LLMS, (VERSIONS.c.llm_id == LLMS.c.llm_id) & (VERSIONS.c.version == LLMS.c.latest_version)
        )
        if pagination_key:
            query = query.where(keyset_after(LLMS.c.created_at, LLMS.c.llm_id, pagination_key, descending))
        query = query.order_by(*ordered(LLMS.c.created_at, LLMS.c.llm_id, descending)).limit(limit + 1)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        more = len(rows) > limit
        rows = rows[:limit]
        key = encode_key(rows[-1].created_at, rows[-1].llm_id) if more else None
        return [_response(r) for r in rows], key
