"""Engines and the threads that run transactions.

Every transaction is a plain function over a SQLAlchemy Core `Connection`, run whole in a DB
thread: the event loop makes one hop per transaction and never waits on the database. Hot
statements are built once with bind parameters, so SQLAlchemy reuses their compiled form. (The async
ORM over aiosqlite cost 7.5x more CPU per read here: one thread hop per statement, plus greenlet
switches; see bench/NOTES.md.)

SQLite (the embedded default) runs in WAL mode. Writes go through one thread and one connection
that opens each transaction with `BEGIN IMMEDIATE` (no lock-upgrade SQLITE_BUSY, which a busy
timeout cannot retry); reads use a small autocommit pool beside it. PostgreSQL (psycopg) has a
transactional writer pool and an autocommit reader pool, a few threads each.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import QueuePool

T = TypeVar("T")


def _sqlite_engine(url: str, *, writer: bool, pool_size: int) -> Engine:
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
        connect_args={"timeout": 30, "check_same_thread": False},
        **({} if writer else {"isolation_level": "AUTOCOMMIT"}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA case_sensitive_like=ON")  # LIKE filters behave as on PostgreSQL
        cursor.close()

    if writer:

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """`await db.read(fn)` / `await db.write(fn)` run `fn(connection)` in one transaction."""

    def __init__(self, url: str, *, read_pool_size: int = 4) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.writer = _sqlite_engine(url, writer=True, pool_size=1)
            self.reader = _sqlite_engine(url, writer=False, pool_size=read_pool_size)
            write_threads = 1
        else:
            self.writer = create_engine(url, pool_size=4, max_overflow=4, pool_pre_ping=True)
            self.reader = create_engine(
                url, pool_size=read_pool_size, max_overflow=4, pool_pre_ping=True, isolation_level="AUTOCOMMIT"
            )
            write_threads = 4
        self._write_threads = ThreadPoolExecutor(write_threads, thread_name_prefix="voxline-db-write")
        self._read_threads = ThreadPoolExecutor(read_pool_size, thread_name_prefix="voxline-db-read")

    def write_sync(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a write transaction on the calling thread (commits unless it raises)."""
        with self.writer.begin() as conn:
            return work(conn)

    def read_sync(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a reader connection in autocommit mode: every statement is atomic on its
        own, and no BEGIN/COMMIT/ROLLBACK round trips are paid for reads."""
        with self.reader.connect() as conn:
            return work(conn)

    async def write(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._write_threads, self.write_sync, work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._read_threads, self.read_sync, work)

    async def dispose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._close)

    def _close(self) -> None:
        self._write_threads.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)
        self.writer.dispose()
        self.reader.dispose()
