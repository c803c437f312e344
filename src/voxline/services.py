"""The object graph of one server process, built from settings (no globals)."""

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from voxline.calls.after_call import AfterCall, AnalysisSettings
from voxline.calls.file_links import FileLinks
from voxline.calls.live import LiveCalls
from voxline.calls.service import CallService
from voxline.calls.tokens import AccessTokens
from voxline.clock import Clock, SystemClock
from voxline.heap import HeapTrimmer
from voxline.keys import ApiKeys, webhook_key
from voxline.llm.openai_chat import OpenAiChat
from voxline.llm.retell_llm import RetellLlmOptions
from voxline.net.egress import GuardedTransport
from voxline.settings import Settings
from voxline.store.agents import AgentRepository
from voxline.store.calls import CallRepository
from voxline.store.database import Database
from voxline.store.llms import LlmRepository
from voxline.store.migrate import upgrade_to_head
from voxline.store.objects import LocalObjectStore, ObjectStore, S3ObjectStore
from voxline.webhooks.dispatcher import WebhookDispatcher

if TYPE_CHECKING:
    from voxline.speech.providers import SpeechProviders


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    keys: ApiKeys
    llms: LlmRepository
    agents: AgentRepository
    calls: CallService
    objects: ObjectStore
    webhooks: WebhookDispatcher = field(init=False)
    after_call: AfterCall = field(init=False)
    live: "LiveCalls" = field(init=False)
    heap: HeapTrimmer = field(init=False)
    _speech: "SpeechProviders | None" = field(default=None, init=False)
    _speech_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _retell_llm: RetellLlmOptions | None = field(default=None, init=False)
    _outbound: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self._outbound = httpx.AsyncClient(
            transport=GuardedTransport(allow_private=s.allow_private_tool_urls),
            trust_env=False,  # a proxy from the environment would bypass the address check
            follow_redirects=False,
        )
        self.webhooks = WebhookDispatcher(
            self.db,
            self._outbound,
            webhook_key(s.token_secret),
            self.clock,
            max_attempts=s.webhook_max_attempts,
            retry_base_s=s.webhook_retry_base_ms / 1000,
        )
        self.calls.file_links = FileLinks(self.public_url, s.token_secret, self.clock)
        self.after_call = AfterCall(
            self.calls, self.objects, self.webhooks, self.analysis_settings, default_webhook_url=s.webhook_url
        )
        self.heap = HeapTrimmer(s.malloc_trim_interval_s)
        self.live = LiveCalls(
            self.calls,
            self.speech,
            self.clock,
            self.retell_llm_options,
            self.after_call,
            s.data_dir / "tmp" / "recordings",
            on_call_over=self.heap.request,
        )
        self.calls.live_stop = self.live.stop
        self.calls.live_control = self.live.control

    @property
    def public_url(self) -> str:
        s = self.settings
        if s.public_url:
            return s.public_url
        host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else s.host
        return f"http://{f'[{host}]' if ':' in host else host}:{s.port}"

    def analysis_settings(self) -> AnalysisSettings:
        options = self.retell_llm_options()
        return AnalysisSettings(options.chat, options.provider_model, self.settings.analysis_model)

    def retell_llm_options(self) -> RetellLlmOptions:
        """The built-in LLM's endpoint client and tool HTTP client, made on first use (one per process)."""
        if self._retell_llm is None:
            s = self.settings
            chat = None
            if s.llm_base_url:
                chat = OpenAiChat(
                    s.llm_base_url,
                    s.llm_api_key,
                    connect_timeout_s=s.llm_connect_timeout_ms / 1000,
                    first_token_timeout_s=s.llm_first_token_timeout_ms / 1000,
                    idle_timeout_s=s.llm_idle_timeout_ms / 1000,
                )
            self._retell_llm = RetellLlmOptions(
                chat=chat,
                http=self._outbound,
                signing_key=webhook_key(s.token_secret),
                allow_private_tool_urls=s.allow_private_tool_urls,
                model_map=dict(s.llm_models),
                default_model=s.llm_default_model,
                now_ms=self.clock.now_ms,
            )
        return self._retell_llm

    async def speech(self) -> "SpeechProviders":
        """The speech providers, loaded once per process (at start-up, or by the first call)."""
        async with self._speech_lock:
            if self._speech is None:
                from voxline.speech.providers import load_speech

                self._speech = await load_speech(self.settings)
            return self._speech

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> "Services":
        settings.ensure_data_dir()
        clock = clock or SystemClock()
        db = Database(settings.resolved_database_url, read_pool_size=settings.database_read_threads)
        agents = AgentRepository(db, clock)
        llms = LlmRepository(db, clock)
        objects = object_store(settings)
        calls = CallService(
            CallRepository(db),
            agents,
            objects,
            AccessTokens(settings.token_secret),
            clock,
            join_timeout_ms=settings.registered_call_timeout_ms,
            ice_servers=settings.ice_servers,
            llms=llms,
        )
        return cls(
            settings=settings,
            db=db,
            clock=clock,
            keys=ApiKeys(db, clock),
            llms=llms,
            agents=agents,
            calls=calls,
            objects=objects,
        )

    async def migrate(self) -> None:
        await upgrade_to_head(self.db)

    async def close(self) -> None:
        await self.heap.close()
        if self._retell_llm is not None and self._retell_llm.chat is not None:
            await self._retell_llm.chat.aclose()
        await self._outbound.aclose()
        if self._speech is not None:
            await self._speech.close()
        await self.db.dispose()


def object_store(settings: Settings) -> ObjectStore:
    """Where call files go: the configured S3-compatible bucket, else the data directory."""
    if settings.s3_bucket:
        return S3ObjectStore(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            region=settings.s3_region,
            key_prefix=settings.s3_key_prefix,
        )
    return LocalObjectStore(settings.data_dir)
