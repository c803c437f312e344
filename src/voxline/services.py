"""The object graph of one server process, built from settings (no globals)."""

from dataclasses import dataclass

from voxline.calls.service import CallService
from voxline.calls.tokens import AccessTokens
from voxline.clock import Clock, SystemClock
from voxline.keys import ApiKeys
from voxline.settings import Settings
from voxline.store.agents import AgentRepository
from voxline.store.calls import CallRepository
from voxline.store.database import Database
from voxline.store.files import LocalFiles
from voxline.store.llms import LlmRepository
from voxline.store.migrate import upgrade_to_head


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    keys: ApiKeys
    llms: LlmRepository
    agents: AgentRepository
    calls: CallService
    files: LocalFiles

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> "Services":
        settings.ensure_data_dir()
        clock = clock or SystemClock()
        db = Database(settings.resolved_database_url, read_pool_size=settings.database_read_threads)
        files = LocalFiles(settings.data_dir / "calls")
        agents = AgentRepository(db, clock)
        calls = CallService(
            CallRepository(db),
            agents,
            files,
            AccessTokens(settings.token_secret),
            clock,
            join_timeout_ms=settings.registered_call_timeout_ms,
            ice_servers=settings.ice_servers,
        )
        return cls(
            settings=settings,
            db=db,
            clock=clock,
            keys=ApiKeys(db, clock),
            llms=LlmRepository(db, clock),
            agents=agents,
            calls=calls,
            files=files,
        )

    async def migrate(self) -> None:
        await upgrade_to_head(self.db)

    async def close(self) -> None:
        await self.db.dispose()
