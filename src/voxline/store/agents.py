"""Agent repository: agents and their versions.

Versions start at 0. Publishing makes a version read-only; an update without `version` edits the
latest version, and if that one is published it first becomes the base of a new draft, so
editing never rewrites what a published version promised.
"""

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from voxline.clock import Clock
from voxline.errors import BadRequest, NotFound
from voxline.ids import new_agent_id
from voxline.schemas.agent import (
    AGENT_DEFAULTS,
    AgentCreateRequest,
    AgentListItem,
    AgentResponse,
    AgentUpdateRequest,
    AgentVersionItem,
)
from voxline.store.database import Database
from voxline.store.paging import encode_key, keyset_after, ordered
from voxline.store.tables import Agent, AgentVersion, RetellLlm, RetellLlmVersion


def _response(row: AgentVersion) -> AgentResponse:
    return AgentResponse.model_validate(
        {
            **row.data,
            "agent_id": row.agent_id,
            "version": row.version,
            "is_published": row.is_published,
            "base_version": row.base_version,
            "last_modification_timestamp": row.last_modification_timestamp,
        }
    )


def _llm_id(data: dict[str, Any]) -> str | None:
    engine = data.get("response_engine") or {}
    return engine.get("llm_id") if engine.get("type") == "retell-llm" else None


async def _check_engine(session: AsyncSession, data: dict[str, Any]) -> None:
    engine = data["response_engine"]
    if engine["type"] == "conversation-flow":
        raise BadRequest("response_engine.type: conversation-flow agents are not supported by this server")
    if engine["type"] == "custom-llm":
        url = engine["llm_websocket_url"]
        if not url.startswith(("ws://", "wss://")):
            raise BadRequest("response_engine.llm_websocket_url: must be a ws:// or wss:// URL")
        return
    llm_id, version = engine["llm_id"], engine.get("version")
    if await session.get(RetellLlm, llm_id) is None:
        raise BadRequest(f"response_engine.llm_id: Retell LLM {llm_id} not found")
    if version is not None and await session.get(RetellLlmVersion, (llm_id, version)) is None:
        raise BadRequest(f"response_engine.version: Retell LLM {llm_id} has no version {version}")


class AgentRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(self, request: AgentCreateRequest) -> AgentResponse:
        data = {**AGENT_DEFAULTS, **request.to_wire()}
        now = self._clock.now_ms()
        agent_id = new_agent_id()
        row = AgentVersion(
            agent_id=agent_id,
            version=0,
            is_published=False,
            base_version=None,
            llm_id=_llm_id(data),
            last_modification_timestamp=now,
            data=data,
        )
        async with self._db.write() as session:
            await _check_engine(session, data)
            session.add(
                Agent(
                    agent_id=agent_id,
                    created_at=now,
                    latest_version=0,
                    agent_name=data.get("agent_name"),
                    user_modified_timestamp=now,
                )
            )
            await session.flush()
            session.add(row)
        return _response(row)

    async def _agent(self, session: AsyncSession, agent_id: str) -> Agent:
        agent = await session.get(Agent, agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id} not found")
        return agent

    async def _version(self, session: AsyncSession, agent_id: str, version: int | None) -> AgentVersion:
        agent = await self._agent(session, agent_id)
        row = await session.get(AgentVersion, (agent_id, agent.latest_version if version is None else version))
        if row is None:
            raise NotFound(f"agent {agent_id} has no version {version}")
        return row

    async def get(self, agent_id: str, version: int | None = None) -> AgentResponse:
        async with self._db.read() as session:
            return _response(await self._version(session, agent_id, version))

    async def resolve(self, agent_id: str, reference: int | str | None) -> AgentResponse:
        """The version a call asks for: a number, "latest", "latest_published", or (absent) latest."""
        async with self._db.read() as session:
            if reference is None or reference == "latest":
                return _response(await self._version(session, agent_id, None))
            if isinstance(reference, int) or (isinstance(reference, str) and reference.isdigit()):
                try:
                    return _response(await self._version(session, agent_id, int(reference)))
                except NotFound as exc:
                    raise BadRequest(f"agent_version: {exc.message}") from exc
            if reference == "latest_published":
                await self._agent(session, agent_id)
                row = await session.scalar(
                    select(AgentVersion)
                    .where(AgentVersion.agent_id == agent_id, AgentVersion.is_published.is_(True))
                    .order_by(AgentVersion.version.desc())
                    .limit(1)
                )
                if row is None:
                    raise BadRequest(f"agent_version: agent {agent_id} has no published version")
                return _response(row)
            raise BadRequest(f"agent_version: unknown version reference {reference!r}")

    async def update(self, agent_id: str, request: AgentUpdateRequest, version: int | None = None) -> AgentResponse:
        patch = request.model_dump(mode="json", exclude_unset=True, by_alias=True)
        patch.pop("opt_out_sensitive_data_storage", None)
        if "data_storage_setting" not in patch and request.data_storage_setting is not None:
            patch["data_storage_setting"] = request.data_storage_setting
        for required in ("response_engine", "voice_id"):
            if required in patch and patch[required] is None:
                raise BadRequest(f"{required}: cannot be null")
        now = self._clock.now_ms()
        async with self._db.write() as session:
            agent = await self._agent(session, agent_id)
            row = await self._version(session, agent_id, version)
            if row.is_published:
                if version is not None:
                    raise BadRequest(f"version {version} of agent {agent_id} is published and read-only")
                row = AgentVersion(
                    agent_id=agent_id,
                    version=agent.latest_version + 1,
                    is_published=False,
                    base_version=row.version,
                    llm_id=row.llm_id,
                    last_modification_timestamp=now,
                    data={k: v for k, v in row.data.items() if k not in ("version_title", "version_description")},
                )
                session.add(row)
                agent.latest_version = row.version
            data = dict(row.data)
            for key, value in patch.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            if "response_engine" in patch:
                await _check_engine(session, data)
            row.data = data
            row.llm_id = _llm_id(data)
            row.last_modification_timestamp = now
            agent.user_modified_timestamp = now
            if row.version == agent.latest_version:
                agent.agent_name = data.get("agent_name")
        return _response(row)

    async def delete(self, agent_id: str) -> None:
        async with self._db.write() as session:
            await self._agent(session, agent_id)
            await session.execute(delete(AgentVersion).where(AgentVersion.agent_id == agent_id))
            await session.execute(delete(Agent).where(Agent.agent_id == agent_id))

    async def list_latest(
        self,
        limit: int,
        pagination_key: str | None = None,
        descending: bool = True,
        query_text: str | None = None,
        is_transfer_agent: bool | None = None,
    ) -> tuple[list[AgentResponse], str | None]:
        query = select(Agent, AgentVersion).join(
            AgentVersion,
            (AgentVersion.agent_id == Agent.agent_id) & (AgentVersion.version == Agent.latest_version),
        )
        if query_text:
            needle = f"%{query_text.lower()}%"
            query = query.where(
                func.lower(func.coalesce(Agent.agent_name, "")).like(needle) | func.lower(Agent.agent_id).like(needle)
            )
        if pagination_key:
            query = query.where(keyset_after(Agent.created_at, Agent.agent_id, pagination_key, descending))
        query = query.order_by(*ordered(Agent.created_at, Agent.agent_id, descending))
        async with self._db.read() as session:
            rows = (await session.execute(query.limit(limit + 1 if is_transfer_agent is None else None))).all()
        if is_transfer_agent is not None:
            rows = [r for r in rows if bool(r[1].data.get("is_transfer_agent")) == is_transfer_agent]
        more = len(rows) > limit
        rows = rows[:limit]
        key = encode_key(rows[-1][0].created_at, rows[-1][0].agent_id) if more else None
        return [_response(v) for _, v in rows], key

    async def key_after(self, agent_id: str) -> str:
        """A pagination key that continues after `agent_id` (legacy lists page by the last id)."""
        async with self._db.read() as session:
            agent = await session.get(Agent, agent_id)
        if agent is None:
            raise BadRequest(f"pagination_key: no agent {agent_id}")
        return encode_key(agent.created_at, agent.agent_id)

    @staticmethod
    def summary(agent: AgentResponse) -> AgentListItem:
        return AgentListItem(
            agent_id=agent.agent_id,
            agent_name=agent.agent_name or "",
            channel="voice",
            is_suspended=False,
            tags={},
            user_modified_timestamp=agent.last_modification_timestamp,
            is_transfer_agent=agent.is_transfer_agent,
        )

    async def versions(self, agent_id: str) -> list[AgentResponse]:
        async with self._db.read() as session:
            await self._agent(session, agent_id)
            rows = (
                await session.scalars(
                    select(AgentVersion).where(AgentVersion.agent_id == agent_id).order_by(AgentVersion.version)
                )
            ).all()
        return [_response(r) for r in rows]

    @staticmethod
    def version_item(agent: AgentResponse) -> AgentVersionItem:
        return AgentVersionItem(
            is_published=bool(agent.is_published),
            last_modification_timestamp=agent.last_modification_timestamp,
            version=agent.version,
            base_version=agent.base_version,
            version_title=agent.version_title,
            version_description=agent.version_description,
        )

    async def create_version(self, agent_id: str, base_version: int) -> AgentResponse:
        now = self._clock.now_ms()
        async with self._db.write() as session:
            agent = await self._agent(session, agent_id)
            base = await session.get(AgentVersion, (agent_id, base_version))
            if base is None:
                raise BadRequest(f"base_version: agent {agent_id} has no version {base_version}")
            row = AgentVersion(
                agent_id=agent_id,
                version=agent.latest_version + 1,
                is_published=False,
                base_version=base_version,
                llm_id=base.llm_id,
                last_modification_timestamp=now,
                data={k: v for k, v in base.data.items() if k not in ("version_title", "version_description")},
            )
            session.add(row)
            agent.latest_version = row.version
            agent.user_modified_timestamp = now
        return _response(row)

    async def delete_version(self, agent_id: str, version: int) -> None:
        async with self._db.write() as session:
            agent = await self._agent(session, agent_id)
            row = await session.get(AgentVersion, (agent_id, version))
            if row is None:
                raise NotFound(f"agent {agent_id} has no version {version}")
            if row.is_published:
                raise BadRequest(f"version {version} of agent {agent_id} is published and cannot be deleted")
            remaining = (
                await session.scalars(
                    select(AgentVersion.version).where(
                        AgentVersion.agent_id == agent_id, AgentVersion.version != version
                    )
                )
            ).all()
            if not remaining:
                raise BadRequest(f"version {version} is the only version of agent {agent_id}; delete the agent")
            await session.delete(row)
            agent.latest_version = max(remaining)

    async def publish(
        self, agent_id: str, version: int | None, title: str | None = None, description: str | None = None
    ) -> AgentResponse:
        now = self._clock.now_ms()
        async with self._db.write() as session:
            agent = await self._agent(session, agent_id)
            row = await self._version(session, agent_id, version)
            data = dict(row.data)
            if title is not None:
                data["version_title"] = title
            if description is not None:
                data["version_description"] = description
            row.data = data
            row.is_published = True
            row.last_modification_timestamp = now
            agent.user_modified_timestamp = now
        return _response(row)
