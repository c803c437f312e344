"""The tables. Columns that lists filter or sort on are real columns; the rest of an object's wire
fields live in one JSON document per row, so new API fields need no migration."""

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
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
    purge_at: Mapped[int | None] = mapped_column(BigInteger, index=True)
    """When the call's transcript, analysis text and files are deleted (data_storage_retention_days)."""
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


WEBHOOK_PENDING = "delivered_at IS NULL AND given_up_at IS NULL"
"""An outbox row still to be sent: neither delivered nor given up."""


class WebhookOutbox(Base):
    """Webhook events waiting to be sent, and the record of those that were (`voxline.webhooks`).

    `id` increases with every enqueue and never goes back (AUTOINCREMENT on SQLite, a sequence on
    PostgreSQL): the events of a call are sent in `id` order. The body is stored as it will be
    sent; only the signature is made at send time. While an attempt runs, `next_attempt_at` is its
    lease: a crashed sender's event becomes due again when the lease runs out.
    """

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    event: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    timeout_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int]
    delivered_at: Mapped[int | None]
    given_up_at: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        # Only pending rows are indexed, so the due scan never reads the delivered history.
        Index(
            "ix_webhook_outbox_due",
            "next_attempt_at",
            sqlite_where=text(WEBHOOK_PENDING),
            postgresql_where=text(WEBHOOK_PENDING),
        ),
        {"sqlite_autoincrement": True},
    )
