"""Apply Alembic migrations to the configured database (run automatically at start-up)."""

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from voxline.store.database import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x766F786C696E65  # "voxline"


def alembic_config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_ID})")
    command.upgrade(alembic_config(conn), "head")


async def upgrade_to_head(db: Database) -> None:
    """Bring the schema up to date. Safe on every start and from several processes at once
    (PostgreSQL: an advisory lock serialises the DDL; SQLite: the write lock)."""
    await db.write(_upgrade)
