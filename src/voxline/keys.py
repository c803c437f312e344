"""API keys: created once and shown once, stored only as a SHA-256 hash, checked in constant time.

Keys are 192 random bits, so a plain SHA-256 is enough (no slow KDF needed: there is nothing to
brute-force). A key is found by its non-secret prefix, then the hashes are compared with
`hmac.compare_digest`, so response time does not depend on how much of a guess matched.
"""

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from voxline.clock import Clock
from voxline.ids import new_id
from voxline.store.database import Database
from voxline.store.tables import ApiKey

KEY_PREFIX = "key_"
PREFIX_LENGTH = len(KEY_PREFIX) + 8
KEYS = ApiKey.__table__
LIVE_KEYS_BY_PREFIX = select(KEYS).where(KEYS.c.prefix == bindparam("prefix"), KEYS.c.revoked_at.is_(None))


WEBHOOK_KEY_NAME = "webhook"


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def webhook_key(secret: bytes) -> str:
    """The API key that signs webhooks and custom-tool requests (Retell's "webhook" key).

    Signing needs the key itself, and keys are stored only hashed, so this one is derived from the
    server's secret key instead of being stored: the same secret always gives the same key, and
    changing the secret (which also voids every access token) rotates it.
    """
    return KEY_PREFIX + hmac.new(secret, b"voxline webhook api key v1", hashlib.sha256).hexdigest()[:48]


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
        info = KeyInfo(new_id("kid", 16), name, raw[:PREFIX_LENGTH], self._clock.now_ms(), None)
        values = {**asdict(info), "key_hash": hash_key(raw)}
        await self._db.write(lambda conn: conn.execute(insert(KEYS).values(values)))
        return NewKey(info=info, raw_key=raw)

    async def ensure_webhook_key(self, secret: bytes) -> NewKey | None:
        """Make the derived webhook key a usable API key; returns it if it was just added."""
        raw = webhook_key(secret)
        key_id = "kid_webhook_" + hash_key(raw)[:8]
        info = KeyInfo(key_id, WEBHOOK_KEY_NAME, raw[:PREFIX_LENGTH], self._clock.now_ms(), None)

        def work(conn: Connection) -> bool:
            if conn.execute(select(KEYS.c.id).where(KEYS.c.id == key_id)).first() is not None:
                return False
            conn.execute(insert(KEYS).values({**asdict(info), "key_hash": hash_key(raw)}))
            return True

        return NewKey(info=info, raw_key=raw) if await self._db.write(work) else None

    async def list(self) -> list[KeyInfo]:
        query = select(KEYS).order_by(KEYS.c.created_at, KEYS.c.id)
        rows = await self._db.read(lambda conn: conn.execute(query).all())
        return [_info(r) for r in rows]

    async def revoke(self, key_id: str) -> bool:
        statement = (
            update(KEYS).where(KEYS.c.id == key_id, KEYS.c.revoked_at.is_(None)).values(revoked_at=self._clock.now_ms())
        )
        return bool(await self._db.write(lambda conn: conn.execute(statement).rowcount))

    async def verify(self, raw_key: str) -> KeyInfo | None:
        """The key's info if it is a live key, else None. Never cached: a revoke takes effect at once."""
        if not raw_key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(raw_key)
        prefix = raw_key[:PREFIX_LENGTH]

        def find(conn: Connection) -> Row | None:  # type: ignore[type-arg]
            found = None
            for row in conn.execute(LIVE_KEYS_BY_PREFIX, {"prefix": prefix}):
                if hmac.compare_digest(row.key_hash, digest):
                    found = row
            return found

        row = await self._db.read(find)
        return _info(row) if row is not None else None


def _info(row: Row) -> KeyInfo:  # type: ignore[type-arg]
    return KeyInfo(row.id, row.name, row.prefix, row.created_at, row.revoked_at)
