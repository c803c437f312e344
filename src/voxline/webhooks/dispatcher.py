"""Sends the outbox's webhook events: signed at send time, in order per call, retried with backoff.

`WebhookDispatcher.enqueue` stores the event (body fixed at that moment) and wakes `run`, the
background loop. The loop takes due events (at most one per call, see `voxline.webhooks.outbox`)
and sends up to `concurrency` of them at once, so a slow or failing receiver holds back only its
own call's later events.

Each attempt is a POST of the stored body with a fresh ``X-Retell-Signature`` (receivers refuse
signatures older than five minutes, so a retry must not reuse the first one). Any 2xx delivers
the event; anything else (status, timeout, connection error) is retried after
``retry_base_s * 2**(attempt-1)`` seconds, capped at ``retry_max_s``, with jitter, until
`max_attempts` attempts were made; then the event is given up and the call's next one goes. A URL
the address guard refuses is given up at once: asking again would not change the answer.

Delivery is at least once. The 2xx is recorded right after it arrives; a crash (or a failed
database write) between the two leaves the event claimed, and it is sent again when its lease
runs out. Nothing is sent again after the success was recorded.
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from voxline.clock import Clock
from voxline.net.egress import EgressRefused, GuardedTransport
from voxline.signing import SIGNATURE_HEADER, compact_json, sign
from voxline.store.database import Database
from voxline.webhooks.outbox import Outbox, OutboxEvent

log = logging.getLogger(__name__)

LEASE_MARGIN_MS = 30_000
"""How long past an attempt's timeout its claim lasts: time to record the outcome."""
RECORD_RETRY_DELAYS_S = (0.2, 1.0, 5.0)
"""Waits between tries of writing an attempt's outcome when the database fails."""


def webhook_body(event: str, call: dict[str, Any]) -> str:
    """The webhook body: the event, the call object, and the same object again as legacy ``data``."""
    return compact_json({"event": event, "call": call, "data": call})


def webhook_http_client(*, allow_private: bool) -> httpx.AsyncClient:
    """The client to give `WebhookDispatcher`: every address checked by the address guard, and no
    environment proxies that would bypass it. Redirects are not followed (a 3xx is a failed
    attempt); per-event timeouts are set on each request."""
    return httpx.AsyncClient(transport=GuardedTransport(allow_private=allow_private), trust_env=False)


def backoff_s(attempt: int, *, base_s: float, max_s: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): exponential, capped, with
    "equal jitter" (between half and all of it), so receivers that failed together are not
    retried together."""
    delay = min(max_s, base_s * 2 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.0)


def _host(url: str) -> str:
    try:
        return httpx.URL(url).host or "?"
    except (httpx.InvalidURL, TypeError, ValueError):
        return "?"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class WebhookDispatcher:
    """Delivers webhook events from the outbox; run `run()` as a background task."""

    def __init__(
        self,
        db: Database,
        http: httpx.AsyncClient,
        signing_key: str,
        clock: Clock,
        *,
        max_attempts: int = 4,
        retry_base_s: float = 1.0,
        retry_max_s: float = 60.0,
        poll_interval_s: float = 1.0,
        concurrency: int = 4,
    ) -> None:
        if max_attempts < 1 or concurrency < 1:
            raise ValueError("max_attempts and concurrency must be at least 1")
        self.outbox = Outbox(db)
        self._http = http
        self._key = signing_key
        self._clock = clock
        self._max_attempts = max_attempts
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._poll_interval_s = poll_interval_s
        self._concurrency = concurrency
        self._wakeup = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._leases: dict[int, int] = {}
        self._timers: set[asyncio.TimerHandle] = set()

    # Producing

    async def enqueue(
        self, call_id: str, event: str, url: str, call: dict[str, Any], *, timeout_ms: int = 10_000
    ) -> None:
        """Store `event` for `call_id` with the call object as it is now, and wake the loop.

        Events of one call are sent in the order their `enqueue` calls completed.
        """
        body = await asyncio.to_thread(webhook_body, event, call)  # a whole call object: off the event loop
        await self.outbox.add(call_id, event, url, body, timeout_ms=timeout_ms, now_ms=self._clock.now_ms())
        self.wake()

    def wake(self) -> None:
        """Look for due events now rather than at the next poll."""
        self._wakeup.set()

    # The loop

    async def run(self) -> None:
        """Send due events until cancelled. Receiver and database errors are logged, never raised."""
        try:
            while True:
                self._wakeup.clear()
                try:
                    await self._start_due()
                except Exception:
                    log.exception("webhook outbox: cannot read due events")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_interval_s):
                        await self._wakeup.wait()
        finally:
            await self._stop()

    async def _start_due(self) -> None:
        free = self._concurrency - len(self._inflight)
        if free <= 0:
            return
        # Ask for a few more than fit: rows already being sent here are skipped.
        for event in await self.outbox.due(self._clock.now_ms(), free + len(self._inflight)):
            if len(self._inflight) >= self._concurrency:
                break
            if event.id not in self._inflight:
                self._inflight[event.id] = asyncio.create_task(self._attempt(event), name=f"webhook-{event.id}")

    async def _stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        leases, self._leases = list(self._leases.items()), {}
        try:
            await self.outbox.release(leases, now_ms=self._clock.now_ms())
        except Exception:
            log.exception("webhook outbox: cannot hand back %d unfinished attempts", len(leases))

    # One attempt

    async def _attempt(self, event: OutboxEvent) -> None:
        settled = False
        try:
            lease_until = self._clock.now_ms() + event.timeout_ms + LEASE_MARGIN_MS
            if await self.outbox.claim(event, lease_until):
                self._leases[event.id] = lease_until
                status, error, permanent = await self._send(event)
                await self._record(event, status, error, permanent)
            settled = True
        except Exception:
            # Most likely the database; the lease brings the event back. No wake: the poll retries.
            log.exception("webhook %s for call %s: attempt failed unexpectedly", event.event, event.call_id)
        finally:
            # A cancelled attempt keeps its lease entry, so that `_stop` hands the event back.
            self._inflight.pop(event.id, None)
            if settled:
                self._leases.pop(event.id, None)
                self.wake()

    async def _send(self, event: OutboxEvent) -> tuple[int | None, str | None, bool]:
        """POST the event once: (status, error or None when delivered, whether retrying is pointless)."""
        timeout_s = event.timeout_ms / 1000
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(event.body, self._key, self._clock.now_ms()),
        }
        try:
            async with asyncio.timeout(timeout_s):  # the whole exchange, not each read
                request = self._http.build_request(
                    "POST", event.url, content=event.body.encode("utf-8"), headers=headers, timeout=timeout_s
                )
                # The response body is not read: a receiver cannot stall us by dripping it.
                response = await self._http.send(request, stream=True)
                await response.aclose()
        except EgressRefused as exc:
            return None, f"refused by the address guard: {exc.reason}", True
        except httpx.InvalidURL as exc:
            return None, f"invalid URL: {exc}", True
        except (TimeoutError, httpx.TimeoutException):
            return None, f"no answer within {event.timeout_ms} ms", False
        except (httpx.HTTPError, OSError) as exc:
            return None, _describe(exc), False
        if 200 <= response.status_code < 300:
            return response.status_code, None, False
        return response.status_code, f"HTTP {response.status_code}", False

    async def _record(self, event: OutboxEvent, status: int | None, error: str | None, permanent: bool) -> None:
        """Write the attempt's outcome, and log a failure."""
        attempt = event.attempts + 1
        now = self._clock.now_ms()
        if error is None:
            assert status is not None
            await self._write(lambda: self.outbox.mark_delivered(event.id, now_ms=now, status=status))
            return
        where = f"webhook {event.event} for call {event.call_id} to {_host(event.url)}"
        retry_at: int | None = None
        if permanent or attempt >= self._max_attempts:
            log.warning("%s: attempt %d failed (%s); giving up", where, attempt, error)
        else:
            delay = backoff_s(attempt, base_s=self._retry_base_s, max_s=self._retry_max_s)
            log.warning("%s: attempt %d failed (%s); retrying in %.2f s", where, attempt, error, delay)
            retry_at = now + round(delay * 1000)
            self._wake_later(delay)
        await self._write(
            lambda: self.outbox.record_failure(event.id, now_ms=now, error=error, status=status, retry_at_ms=retry_at)
        )
        if retry_at is None:
            log.error("%s given up after %d attempts: %s", where, attempt, error)

    async def _write(self, write: Callable[[], Awaitable[None]]) -> None:
        """Run a write of an attempt's outcome, trying again a few times when the database fails.
        If it never succeeds the event stays claimed and is sent again when its lease runs out."""
        for delay in (*RECORD_RETRY_DELAYS_S, None):
            try:
                await write()
                return
            except Exception:
                if delay is None:
                    raise
                log.warning("webhook outbox: cannot record an attempt; trying again in %.1f s", delay, exc_info=True)
                await asyncio.sleep(delay)

    def _wake_later(self, delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._timers = {timer for timer in self._timers if timer.when() > loop.time()}
        self._timers.add(loop.call_later(delay_s, self.wake))

    # Waiting

    async def drain(self, timeout_s: float) -> None:
        """Wait until no attempt is running and no event is due now (events waiting for a retry
        later do not count). Needs `run` to be running; raises TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while True:
                self.wake()
                if not self._inflight and not await self.outbox.any_due(self._clock.now_ms()) and not self._inflight:
                    return
                await asyncio.sleep(0.01)

    async def settle(self, timeout_s: float) -> None:
        """Wait until every event is delivered or given up, retries included. Needs `run` to be
        running; raises TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while self._inflight or await self.outbox.pending_count():
                self.wake()
                await asyncio.sleep(0.02)
