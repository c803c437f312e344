"""Background task that ends calls that would otherwise never end: registered calls nobody
joined in time, and ongoing calls whose server process died.

The deadline lives in the database, so a call registered before a restart is still ended after
it; with several processes on PostgreSQL each sweep is one atomic UPDATE, so no call ends twice.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from voxline.calls.service import CallService

log = logging.getLogger(__name__)


HEARTBEAT_EVERY_S = 5.0


async def sweep_forever(
    service: CallService,
    interval_s: float,
    *,
    on_ended: Callable[[str], Awaitable[None]] | None = None,
    cleanup_interval_s: float = 600.0,
) -> None:
    """End unjoined calls every `interval_s`; every few seconds also heartbeat this process and
    end the ongoing calls of processes that stopped (crashed, killed) without ending them; every
    `cleanup_interval_s` purge calls past their retention. `on_ended` hears of each call ended here."""
    last_heartbeat = last_cleanup = float("-inf")
    loop = asyncio.get_running_loop()
    while True:
        try:
            ended = await service.end_unjoined()
            for call_id in ended:
                log.info("call %s ended: error_user_not_joined", call_id)
            if loop.time() - last_heartbeat >= HEARTBEAT_EVERY_S:
                last_heartbeat = loop.time()
                await service.heartbeat()
                orphaned = await service.end_orphaned()
                for call_id in orphaned:
                    log.warning("call %s ended: error_unknown (its server process stopped)", call_id)
                ended += orphaned
            if on_ended is not None:
                for call_id in ended:
                    await on_ended(call_id)
            if loop.time() - last_cleanup >= cleanup_interval_s:
                last_cleanup = loop.time()
                for call_id in await service.purge_expired():
                    log.info("call %s: retention period over, transcript, analysis text and files deleted", call_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweeping calls failed; retrying")
        await asyncio.sleep(interval_s)
