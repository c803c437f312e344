"""API keys: created once and shown once, stored only as a SHA-256 hash, checked in constant time.

Keys are 192 random bits, so a plain SHA-256 is enough (no slow KDF needed: there is nothing to
brute-force). A key is found by its non-secret prefix, then the hashes are compared with
`hmac.compare_digest`, so response time does not depend on how much of a guess matched.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update

from voxline.clock import Clock
from voxline.ids import new_id
from voxline.store.database import Database
from voxline.store.tables import ApiKey

KEY_PREFIX = "key_"
PREFIX_LENGTH = len(KEY_PREFIX) + 8


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    id: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True)
class NewKey:
    info: KeyInfo
    raw_key: str


class ApiKeys:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(self, name: str = "default") -> NewKey:
        raw = KEY_PREFIX + secrets.token_hex(24)
        row = ApiKey(
            id=new_id("kid", 16),
            name=name,
            prefix=raw[:PREFIX_LENGTH],
            key_hash=hash_key(raw),
            created_at=self._clock.now_ms(),
            revoked_at=None,
        )
        async with self._db.write() as session:
            session.add(row)
        return NewKey(info=_info(row), raw_key=raw)

    async def list(self) -> list[KeyInfo]:
        async with self._db.read() as session:
            rows = (await session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))).all()
        return [_info(r) for r in rows]

    async def count_active(self) -> int:
        return sum(1 for k in await self.list() if k.revoked_at is None)

    async def revoke(self, key_id: str) -> bool:
        async with self._db.write() as session:
            result = await session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=self._clock.now_ms())
            )
        return result.rowcount > 0  # type: ignore[attr-defined]

    async def verify(self, raw_key: str) -> KeyInfo | None:
        """The key's info if it is a live key, else None. Never cached: a revoke takes effect at once."""
        if not raw_key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(raw_key)
        async with self._db.read() as session:
            rows = (
                await session.scalars(
                    select(ApiKey).where(ApiKey.prefix == raw_key[:PREFIX_LENGTH], ApiKey.revoked_at.is_(None))
                )
            ).all()
        found = None
        for row in rows:
            if hmac.compare_digest(row.key_hash, digest):
                found = row
        return _info(found) if found is not None else None


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(row.id, row.name, row.prefix, row.created_at, row.revoked_at)
