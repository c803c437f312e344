"""Background task that ends calls that would otherwise never end: registered calls nobody
joined in time, and ongoing calls whose server process died.

The deadline lives in the database, so a call registered before a restart is still ended after
it; with several processes on PostgreSQL each sweep is one atomic UPDATE, so no call ends twice.
"""

import asyncio
import logging

from voxline.calls.service import CallService

log = logging.getLogger(__name__)


HEARTBEAT_EVERY_S = 5.0


async def sweep_forever(service: CallService, interval_s: float) -> None:
    """End unjoined calls every `interval_s`; every few seconds also heartbeat this process and
    end the ongoing calls of processes that stopped (crashed, killed) without ending them."""
    last_heartbeat = float("-inf")
    loop = asyncio.get_running_loop()
    while True:
        try:
            for call_id in await service.end_unjoined():
                log.info("call %s ended: error_user_not_joined", call_id)
            if loop.time() - last_heartbeat >= HEARTBEAT_EVERY_S:
                last_heartbeat = loop.time()
                await service.heartbeat()
                for call_id in await service.end_orphaned():
                    log.warning("call %s ended: error_unknown (its server process stopped)", call_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweeping calls failed; retrying")
        await asyncio.sleep(interval_s)
