"""Apply Alembic migrations to the configured database (run automatically by `voxline serve`)."""

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x766F786C696E65  # "voxline"


def alembic_config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the schema up to date. Safe to call on every start and from several processes
    (PostgreSQL serialises the DDL on Alembic's version table; SQLite on its write lock)."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_ID})")
        await conn.run_sync(lambda sync_conn: command.upgrade(alembic_config(sync_conn), "head"))
        await conn.commit()
