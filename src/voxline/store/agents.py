"""Agent repository: agents and their versions.

Versions start at 0. Publishing makes a version read-only; an update without `version` edits the
latest version, and if that one is published it first becomes the base of a new draft, so
editing never rewrites what a published version promised.
"""

from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

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
from voxline.store.versions import Versioned

AGENTS = Agent.__table__
VERSIONS = AgentVersion.__table__
LLMS = RetellLlm.__table__
LLM_VERSIONS = RetellLlmVersion.__table__
VERSION_ONLY_FIELDS = ("version_title", "version_description")
LATEST_VERSION = (
    select(VERSIONS)
    .join(AGENTS, (VERSIONS.c.agent_id == AGENTS.c.agent_id) & (VERSIONS.c.version == AGENTS.c.latest_version))
    .where(AGENTS.c.agent_id == bindparam("agent_id"))
)


def _response(version: dict[str, Any] | Any) -> AgentResponse:
    v = version if isinstance(version, dict) else version._mapping
    return AgentResponse.model_validate(
        {
            **v["data"],
            "agent_id": v["agent_id"],
            "version": v["version"],
            "is_published": v["is_published"],
            "base_version": v["base_version"],
            "last_modification_timestamp": v["last_modification_timestamp"],
        }
    )


def _llm_id(data: dict[str, Any]) -> str | None:
    engine = data.get("response_engine") or {}
    return engine.get("llm_id") if engine.get("type") == "retell-llm" else None


def _check_engine(conn: Connection, data: dict[str, Any]) -> None:
    engine = data["response_engine"]
    if engine["type"] == "conversation-flow":
        raise BadRequest("response_engine.type: conversation-flow agents are not supported by this server")
    if engine["type"] == "custom-llm":
        if not engine["llm_websocket_url"].startswith(("ws://", "wss://")):
            raise BadRequest("response_engine.llm_websocket_url: must be a ws:// or wss:// URL")
        return
    llm_id, version = engine["llm_id"], engine.get("version")
    if conn.execute(select(LLMS.c.llm_id).where(LLMS.c.llm_id == llm_id)).first() is None:
        raise BadRequest(f"response_engine.llm_id: Retell LLM {llm_id} not found")
    if version is not None:
        found = conn.execute(
            select(LLM_VERSIONS.c.version).where(LLM_VERSIONS.c.llm_id == llm_id, LLM_VERSIONS.c.version == version)
        ).first()
        if found is None:
            raise BadRequest(f"response_engine.version: Retell LLM {llm_id} has no version {version}")


AGENT = Versioned(AGENTS, VERSIONS, "agent_id", "agent")
_agent = AGENT.parent
_version = AGENT.version


def _new_version(agent_id: str, number: int, base: Any, now: int) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "version": number,
        "is_published": False,
        "base_version": base.version,
        "llm_id": base.llm_id,
        "last_modification_timestamp": now,
        "data": {k: v for k, v in base.data.items() if k not in VERSION_ONLY_FIELDS},
    }


class AgentRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(self, request: AgentCreateRequest) -> AgentResponse:
        data = {**AGENT_DEFAULTS, **request.to_wire()}
        now = self._clock.now_ms()
        agent_id = new_agent_id()
        version = {
            "agent_id": agent_id,
            "version": 0,
            "is_published": False,
            "base_version": None,
            "llm_id": _llm_id(data),
            "last_modification_timestamp": now,
            "data": data,
        }

        def work(conn: Connection) -> None:
            _check_engine(conn, data)
            conn.execute(
                insert(AGENTS).values(
                    agent_id=agent_id,
                    created_at=now,
                    latest_version=0,
                    agent_name=data.get("agent_name"),
                    user_modified_timestamp=now,
                )
            )
            conn.execute(insert(VERSIONS).values(version))

        await self._db.write(work)
        return _response(version)

    async def get(self, agent_id: str, version: int | None = None) -> AgentResponse:
        if version is None:
            return await self.resolve(agent_id, None)
        return _response(await self._db.read(lambda conn: _version(conn, agent_id, version)))

    async def resolve(self, agent_id: str, reference: int | str | None) -> AgentResponse:
        """The version a call asks for: a number, "latest", "latest_published", or (absent) latest."""

        def work(conn: Connection) -> Any:
            if reference is None or reference == "latest":
                row = conn.execute(LATEST_VERSION, {"agent_id": agent_id}).first()
                if row is None:
                    raise NotFound(f"agent {agent_id} not found")
                return row
            if isinstance(reference, int) or reference.isdigit():
                try:
                    return _version(conn, agent_id, int(reference))
                except NotFound as exc:
                    _agent(conn, agent_id)
                    raise BadRequest(f"agent_version: {exc.message}") from exc
            if reference == "latest_published":
                _agent(conn, agent_id)
                row = conn.execute(
                    select(VERSIONS)
                    .where(VERSIONS.c.agent_id == agent_id, VERSIONS.c.is_published.is_(True))
                    .order_by(VERSIONS.c.version.desc())
                    .limit(1)
                ).first()
                if row is None:
                    raise BadRequest(f"agent_version: agent {agent_id} has no published version")
                return row
            raise BadRequest(f"agent_version: unknown version reference {reference!r}")

        return _response(await self._db.read(work))

    async def update(self, agent_id: str, request: AgentUpdateRequest, version: int | None = None) -> AgentResponse:
        patch = request.model_dump(mode="json", exclude_unset=True, by_alias=True)
        for required in ("response_engine", "voice_id"):
            if required in patch and patch[required] is None:
                raise BadRequest(f"{required}: cannot be null")
        now = self._clock.now_ms()

        def work(conn: Connection) -> dict[str, Any]:
            agent = _agent(conn, agent_id)
            row = _version(conn, agent_id, version)
            latest = agent.latest_version
            if row.is_published:
                if version is not None:
                    raise BadRequest(f"version {version} of agent {agent_id} is published and read-only")
                target = _new_version(agent_id, latest + 1, row, now)
                conn.execute(insert(VERSIONS).values(target))
                latest = target["version"]
            else:
                target = dict(row._mapping)
            data = dict(target["data"])
            for key, value in patch.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            if "response_engine" in patch:
                _check_engine(conn, data)
            target.update(data=data, llm_id=_llm_id(data), last_modification_timestamp=now)
            conn.execute(
                update(VERSIONS)
                .where(VERSIONS.c.agent_id == agent_id, VERSIONS.c.version == target["version"])
                .values(data=data, llm_id=target["llm_id"], last_modification_timestamp=now)
            )
            agent_values: dict[str, Any] = {"latest_version": latest, "user_modified_timestamp": now}
            if target["version"] == latest:
                agent_values["agent_name"] = data.get("agent_name")
            conn.execute(update(AGENTS).where(AGENTS.c.agent_id == agent_id).values(agent_values))
            return target

        return _response(await self._db.write(work))

    async def delete(self, agent_id: str) -> None:
        def work(conn: Connection) -> None:
            _agent(conn, agent_id)
            conn.execute(delete(VERSIONS).where(VERSIONS.c.agent_id == agent_id))
            conn.execute(delete(AGENTS).where(AGENTS.c.agent_id == agent_id))

        await self._db.write(work)

    async def list_latest(
        self,
        limit: int,
        pagination_key: str | None = None,
        descending: bool = True,
        query_text: str | None = None,
        is_transfer_agent: bool | None = None,
    ) -> tuple[list[AgentResponse], str | None]:
        query = select(VERSIONS, AGENTS.c.created_at).join(
            AGENTS, (VERSIONS.c.agent_id == AGENTS.c.agent_id) & (VERSIONS.c.version == AGENTS.c.latest_version)
        )
        if query_text:
            needle = f"%{query_text.lower()}%"
            query = query.where(
                func.lower(func.coalesce(AGENTS.c.agent_name, "")).like(needle)
                | func.lower(AGENTS.c.agent_id).like(needle)
            )
        if pagination_key:
            query = query.where(keyset_after(AGENTS.c.created_at, AGENTS.c.agent_id, pagination_key, descending))
        query = query.order_by(*ordered(AGENTS.c.created_at, AGENTS.c.agent_id, descending))
        if is_transfer_agent is None:
            query = query.limit(limit + 1)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        if is_transfer_agent is not None:
            rows = [r for r in rows if bool(r.data.get("is_transfer_agent")) == is_transfer_agent]
        more = len(rows) > limit
        rows = rows[:limit]
        key = encode_key(rows[-1].created_at, rows[-1].agent_id) if more else None
        return [_response(r) for r in rows], key

    async def key_after(self, agent_id: str) -> str:
        """A pagination key that continues after `agent_id` (legacy lists page by the last id)."""
        query = select(AGENTS.c.created_at).where(AGENTS.c.agent_id == agent_id)
        created_at = await self._db.read(lambda conn: conn.execute(query).scalar())
        if created_at is None:
            raise BadRequest(f"pagination_key: no agent {agent_id}")
        return encode_key(created_at, agent_id)

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
        def work(conn: Connection) -> list[Any]:
            _agent(conn, agent_id)
            query = select(VERSIONS).where(VERSIONS.c.agent_id == agent_id).order_by(VERSIONS.c.version)
            return list(conn.execute(query).all())

        return [_response(r) for r in await self._db.read(work)]

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

        def work(conn: Connection) -> dict[str, Any]:
            agent = _agent(conn, agent_id)
            try:
                base = _version(conn, agent_id, base_version)
            except NotFound as exc:
                raise BadRequest(f"base_version: {exc.message}") from exc
            row = _new_version(agent_id, agent.latest_version + 1, base, now)
            conn.execute(insert(VERSIONS).values(row))
            conn.execute(
                update(AGENTS)
                .where(AGENTS.c.agent_id == agent_id)
                .values(latest_version=row["version"], user_modified_timestamp=now)
            )
            return row

        return _response(await self._db.write(work))

    async def delete_version(self, agent_id: str, version: int) -> None:
        def work(conn: Connection) -> None:
            row = _version(conn, agent_id, version)
            if row.is_published:
                raise BadRequest(f"version {version} of agent {agent_id} is published and cannot be deleted")
            others = conn.execute(
                select(VERSIONS.c.version).where(VERSIONS.c.agent_id == agent_id, VERSIONS.c.version != version)
            ).scalars()
            remaining = list(others)
            if not remaining:
                raise BadRequest(f"version {version} is the only version of agent {agent_id}; delete the agent")
            conn.execute(delete(VERSIONS).where(VERSIONS.c.agent_id == agent_id, VERSIONS.c.version == version))
            conn.execute(update(AGENTS).where(AGENTS.c.agent_id == agent_id).values(latest_version=max(remaining)))

        await self._db.write(work)

    async def publish(
        self, agent_id: str, version: int | None, title: str | None = None, description: str | None = None
    ) -> AgentResponse:
        now = self._clock.now_ms()

        def work(conn: Connection) -> dict[str, Any]:
            row = dict(_version(conn, agent_id, version)._mapping)
            data = dict(row["data"])
            if title is not None:
                data["version_title"] = title
            if description is not None:
                data["version_description"] = description
            row.update(data=data, is_published=True, last_modification_timestamp=now)
            conn.execute(
                update(VERSIONS)
                .where(VERSIONS.c.agent_id == agent_id, VERSIONS.c.version == row["version"])
                .values(data=data, is_published=True, last_modification_timestamp=now)
            )
            conn.execute(update(AGENTS).where(AGENTS.c.agent_id == agent_id).values(user_modified_timestamp=now))
            return row

        return _response(await self._db.write(work))
