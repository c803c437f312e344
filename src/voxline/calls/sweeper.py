"""Background task that ends registered calls nobody joined in time.

The deadline lives in the database, so a call registered before a restart is still ended after
it; with several processes on PostgreSQL each sweep is one atomic UPDATE, so no call ends twice.
"""

import asyncio
import logging

from voxline.calls.service import CallService

log = logging.getLogger(__name__)


async def sweep_forever(service: CallService, interval_s: float) -> None:
    while True:
        try:
            ended = await service.end_unjoined()
            for call_id in ended:
                log.info("call %s ended: error_user_not_joined", call_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sweeping unjoined calls failed; retrying")
        await asyncio.sleep(interval_s)
