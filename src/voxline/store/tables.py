"""The tables. Columns that lists filter or sort on are real columns; the rest of an object's wire
fields live in one JSON document per row, so new API fields need no migration."""

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, int: BigInteger}


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(20), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int]
    revoked_at: Mapped[int | None]


class RetellLlm(Base):
    __tablename__ = "retell_llms"

    llm_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[int] = mapped_column(index=True)
    latest_version: Mapped[int] = mapped_column(Integer)


class RetellLlmVersion(Base):
    __tablename__ = "retell_llm_versions"

    llm_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("retell_llms.llm_id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    is_published: Mapped[bool] = mapped_column(Boolean, default=False)
    last_modification_timestamp: Mapped[int]
    data: Mapped[dict[str, Any]]


class Agent(Base):
    __tablename__ = "agents"

    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[int] = mapped_column(index=True)
    latest_version: Mapped[int] = mapped_column(Integer)
    agent_name: Mapped[str | None] = mapped_column(String(500))
    user_modified_timestamp: Mapped[int]


class AgentVersion(Base):
    __tablename__ = "agent_versions"

    agent_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("agents.agent_id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    is_published: Mapped[bool] = mapped_column(Boolean, default=False)
    base_version: Mapped[int | None] = mapped_column(Integer)
    llm_id: Mapped[str | None] = mapped_column(String(64), index=True)
    last_modification_timestamp: Mapped[int]
    data: Mapped[dict[str, Any]]


class Call(Base):
    __tablename__ = "calls"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_type: Mapped[str] = mapped_column(String(20))
    agent_id: Mapped[str] = mapped_column(String(64), index=True)
    agent_version: Mapped[int] = mapped_column(Integer)
    call_status: Mapped[str] = mapped_column(String(20))
    disconnection_reason: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[int]
    start_timestamp: Mapped[int | None]
    end_timestamp: Mapped[int | None]
    duration_ms: Mapped[int | None]
    join_deadline: Mapped[int]
    token_nonce: Mapped[str] = mapped_column(String(64))
    user_sentiment: Mapped[str | None] = mapped_column(String(20))
    call_successful: Mapped[bool | None] = mapped_column(Boolean)
    in_voicemail: Mapped[bool | None] = mapped_column(Boolean)
    data_storage_setting: Mapped[str] = mapped_column(String(40))
    live_owner: Mapped[str | None] = mapped_column(String(40))
    """The server process running the call while it is ongoing (see `LiveProcess`)."""
    call_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    dynamic_variables: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    data: Mapped[dict[str, Any]]
    """Other wire fields of the call object (transcripts, latency, analysis, ...)."""
    config: Mapped[dict[str, Any]]
    """What the live call needs and the API never shows: the effective agent and LLM overrides."""

    __table_args__ = (
        Index("ix_calls_created", "created_at", "call_id"),
        Index("ix_calls_status_deadline", "call_status", "join_deadline"),
    )


class LiveProcess(Base):
    """A server process that runs live calls, and when it last said it is alive. Ongoing calls of
    a process that stopped saying so are ended by the others (or by its successor)."""

    __tablename__ = "live_processes"

    owner: Mapped[str] = mapped_column(String(40), primary_key=True)
    heartbeat_at: Mapped[int]
