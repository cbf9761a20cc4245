"""Sends due deliveries, on every instance, each under a lease.

A sender takes a due delivery with a lease of LEASE_SECONDS (store/webhooks.py: one winner among
all instances), POSTs it, and records the outcome only while it still holds the lease. The lease
outlasts the longest attempt (the 10 s answer window plus slack), so two instances never send the
same delivery at the same time; a sender that dies mid-attempt leaves a lease that runs out, and
any instance takes the delivery over within LEASE_SECONDS. Every attempt carries the delivery's id
as `webhook-id`: at least once, and receivers deduplicate on it.

A 2xx answer within ANSWER_WINDOW_SECONDS delivers. Anything else (no answer in time, a refused or
failed connection, any 3xx — redirects are not followed —, 4xx, 5xx) is tried again on the retry
schedule until the delivery's deadline, then it is `failed`. An endpoint whose deliveries have
all been failing for the schedule's horizon (24 h) is deactivated, and its market told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any, Protocol

import aiohttp

from hub.clock import Clock, SystemClock
from hub.metrics import HubMetrics
from hub.webhooks.address_guard import AddressRefused, GuardedResolver, check_send_target, check_url_form
from hub.webhooks.schedule import RetrySchedule
from hub.webhooks.signing import webhook_headers
from store.client import UNAVAILABLE_ERRORS
from store.codec import epoch_ms, now
from store.webhooks import WebhookDeliveries, WebhookDelivery, WebhookEndpoint, WebhookEndpoints

log = logging.getLogger(__name__)

ANSWER_WINDOW_SECONDS = 10.0
LEASE_SECONDS = 15.0
# An attempt starts only while its lease has the answer window plus this left.
LEASE_MARGIN_SECONDS = 1.0
CONCURRENCY = 16
CLOSE_SECONDS = 3.0
USER_AGENT = "MarketHub-Webhooks/1.0"


class EndpointNotifier(Protocol):
    """Tells a market that one of its endpoints was turned off (hub/notices.py, by email)."""

    async def webhook_endpoint_deactivated(self, market_id: str, url: str) -> None: ...


class WebhookSender:
    def __init__(
        self,
        endpoints: WebhookEndpoints,
        deliveries: WebhookDeliveries,
        schedule: RetrySchedule,
        metrics: HubMetrics,
        *,
        allow_insecure: bool,
        notifier: EndpointNotifier | None = None,
        clock: Clock | None = None,
        lease_seconds: float = LEASE_SECONDS,
        answer_window_seconds: float = ANSWER_WINDOW_SECONDS,
        poll_seconds: float = 1.0,
    ) -> None:
        self.endpoints = endpoints
        self.deliveries = deliveries
        self.schedule = schedule
        self.metrics = metrics
        self.allow_insecure = allow_insecure
        self.notifier = notifier
        # What time it is for the secrets' overlap after a rotation (tests move it).
        self.clock = clock or SystemClock()
        self.lease_ms = int(lease_seconds * 1000)
        self.answer_window_seconds = answer_window_seconds
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        """New deliveries were made here: look for due work now rather than at the next poll."""
        self._wake.set()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = None if self.allow_insecure else GuardedResolver()
            connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, limit=CONCURRENCY)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.answer_window_seconds),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": USER_AGENT},
                trust_env=False,
            )
        return self._session

    async def run(self) -> None:
        """Forever: take what is due (as many as there are free slots), send each on its own task."""
        while True:
            try:
                taken = await self.take_due()
            except UNAVAILABLE_ERRORS:
                log.warning("webhook sender: database unavailable")
                taken = 0
            except Exception:  # the sender must outlive any one bad round
                log.exception("webhook sender round failed")
                taken = 0
            if not taken:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives as the
                # wake-up does (an attempt ending at shutdown), and the app's cleanup then waits on this loop forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()
                self._wake.clear()

    async def take_due(self) -> int:
        free = CONCURRENCY - len(self._sends)
        if free <= 0:
            return 0
        at_ms = epoch_ms(now())
        taken = 0
        for delivery in await self.deliveries.due(at_ms, limit=free):
            token = secrets.token_hex(12)
            if not await self.deliveries.lease(delivery, until_ms=at_ms + self.lease_ms, token=token):
                continue  # another instance took it
            leased = delivery.model_copy(
                update={
                    "attempts": delivery.attempts + 1,
                    "lease_token": token,
                    "lease_until_ms": at_ms + self.lease_ms,
                }
            )
            task = asyncio.create_task(self.attempt(leased))
            self._sends.add(task)
            task.add_done_callback(self._sent)
            taken += 1
        return taken

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        self._wake.set()  # a slot is free

    async def close(self) -> None:
        """Let attempts in flight finish for a moment; the leases of the rest run out for another instance."""
        if self._sends:
            await asyncio.wait(list(self._sends), timeout=CLOSE_SECONDS)
        for task in list(self._sends):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def attempt(self, delivery: WebhookDelivery) -> None:
        """One attempt of a leased delivery, and its outcome recorded. Never raises."""
        try:
            endpoint = await self.endpoints.get(delivery.endpoint_id)
            if endpoint is None or not endpoint.is_active:
                await self._give_up(delivery, None, "the endpoint is deleted or inactive")
                return
            if epoch_ms(now()) + (self.answer_window_seconds + LEASE_MARGIN_SECONDS) * 1000 > delivery.lease_until_ms:
                # The database was slow: an attempt started now could outlive the lease, and another
                # instance could send the delivery at the same time. Hand it back untried.
                await self.deliveries.finish(delivery.id, delivery.lease_token, {"attempts": delivery.attempts - 1})
                return
            status, error = await self._post(endpoint, delivery)
            self.metrics.webhook_attempts.inc()
            if status is not None and 200 <= status < 300:
                await self._delivered(delivery, status)
            else:
                await self._failed_attempt(delivery, endpoint, status, error)
        except Exception:
            log.exception("webhook attempt failed to complete", extra={"delivery_id": delivery.id})

    async def _post(self, endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> tuple[int | None, str | None]:
        body = delivery.body.encode()
        attempt_at = now()
        headers = webhook_headers(
            endpoint.signing_secrets(epoch_ms(self.clock.now())), delivery.id, int(attempt_at.timestamp()), body
        )
        try:
            host, _ = check_url_form(endpoint.url, allow_insecure=self.allow_insecure)
            check_send_target(host, allow_insecure=self.allow_insecure)
            async with self._client().post(endpoint.url, data=body, headers=headers, allow_redirects=False) as answer:
                status = answer.status
        except AddressRefused as refused:
            return None, f"refused: {refused}"
        except TimeoutError:
            return None, f"no answer within {self.answer_window_seconds:g} s"
        except aiohttp.ClientError as error:
            return None, f"connection failed ({type(error).__name__})"
        except OSError as error:
            return None, f"connection failed ({error.strerror or type(error).__name__})"
        return status, None if 200 <= status < 300 else f"answered {status}"

    async def _delivered(self, delivery: WebhookDelivery, status: int) -> None:
        at_ms = epoch_ms(now())
        changes: dict[str, Any] = {"status": "delivered", "delivered_ms": at_ms, "last_status_code": status,
                                   "last_error": None}  # fmt: skip
        if await self.deliveries.finish(delivery.id, delivery.lease_token, changes):
            self.metrics.webhook_deliveries.labels(outcome="delivered").inc()
            self.metrics.webhook_lag.observe(max(0, at_ms - delivery.event_ms) / 1000)
        await self.endpoints.note_success(delivery.endpoint_id)

    async def _failed_attempt(
        self, delivery: WebhookDelivery, endpoint: WebhookEndpoint, status: int | None, error: str | None
    ) -> None:
        at_ms = epoch_ms(now())
        await self.endpoints.note_failure(endpoint.id, delivery.event_ms)
        next_ms = self.schedule.next_attempt_ms(attempts=delivery.attempts, failed_at_ms=at_ms,
                                                give_up_ms=delivery.give_up_ms)  # fmt: skip
        if next_ms is None:
            await self._give_up(delivery, status, error)
            # Failing since this delivery's event (or earlier) and given up at its horizon: a day without success.
            if await self.endpoints.deactivate_failing(endpoint.id, delivery.event_ms):
                log.warning("webhook endpoint deactivated: failing for the whole retry horizon",
                            extra={"endpoint_id": endpoint.id, "market_id": endpoint.market_id})  # fmt: skip
                await self._tell(endpoint)
            return
        changes = {"next_attempt_ms": next_ms, "last_status_code": status, "last_error": error}
        if await self.deliveries.finish(delivery.id, delivery.lease_token, changes):
            self.metrics.webhook_deliveries.labels(outcome="retry").inc()

    async def _give_up(self, delivery: WebhookDelivery, status: int | None, error: str | None) -> None:
        changes = {"status": "failed", "last_status_code": status, "last_error": error}
        if await self.deliveries.finish(delivery.id, delivery.lease_token, changes):
            self.metrics.webhook_deliveries.labels(outcome="failed").inc()

    async def _tell(self, endpoint: WebhookEndpoint) -> None:
        if self.notifier is None:
            return
        try:
            await self.notifier.webhook_endpoint_deactivated(endpoint.market_id, endpoint.url)
        except Exception:
            log.warning("webhook deactivation notice failed", exc_info=True, extra={"endpoint_id": endpoint.id})
