"""The notification dispatcher: outbox -> deliveries -> gateways, at least once.

Every `poll_s` seconds (never on the reactor thread: one cycle at a time runs on the
dispatcher's own thread pool, so a slow gateway never slows ingestion):

1. Expand the outbox (`Store.pending_outbox`): for each event, every user who may
   see the device, whose preferences want it (`Preferences.wants`), on each of the
   user's enabled, confirmed tokens whose channel is configured and wanted, becomes one
   delivery (`Store.expand_outbox`, one transaction with the outbox row's removal;
   the unique (event, token) key means never twice to one token for one event).
   Storms: an event of the same device, type and subject (the same alarm) as one
   notified within `coalesce_s` becomes a "coalesced" delivery that is not sent.
   Quiet hours: "suppressed" (not sent), unless the event is a critical alarm and
   the user keeps `criticalOverride`.
2. Send the due deliveries (`Store.due_deliveries`), each through its channel's
   `Notifier`, and store the attempt (`Store.record_attempt`): sent; retry (5xx,
   timeouts, 429 / quota) after an exponential backoff with jitter
   (`backoff_min_s` doubling to `backoff_max_s`, times 0.5..1.0) or the gateway's
   Retry-After if later; given up as "failed" after `max_attempts`; an
   invalid_token prunes the token.  A 429 or quota answer also pauses that channel
   until its Retry-After (per-gateway back-off), so the rest of its queue waits
   instead of hammering it.
   A target that is not confirmed (an e-mail address whose code has not come back,
   `tracker.push.confirm`) gets nothing: it is never expanded to, and a due
   delivery to one is failed with "target not confirmed" without being sent.
3. A crash anywhere loses nothing: outbox rows commit with their events, a
   delivery stays "pending" until its attempt is stored, so after a restart what
   was pending is sent (a crash between a gateway's accept and the attempt's
   commit can repeat that one message: at least once).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable, Mapping

from twisted.internet import defer, task
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from tracker.models import DueDelivery, NewDelivery, OutboxItem
from tracker.push import texts
from tracker.push.base import (
    FAILED,
    INVALID_TOKEN,
    RETRY,
    SENT,
    Notifier,
    PushMessage,
    PushTarget,
    mask,
    token_hash,
)
from tracker.push.confirm import is_confirmed
from tracker.push.preferences import Preferences, PreferencesError, channels_wanted, is_critical

log = Logger()

MIN_DELAY_S = 1.0   # a retry never comes sooner (a cycle sends until nothing is due)


class Dispatcher:
    """See the module docstring.  `notifiers`: channel name -> Notifier."""

    def __init__(self, store, reactor, threadpool, notifiers: Mapping[str, Notifier], *,
                 public_url: str = "", poll_s: float = 1.0, coalesce_s: float = 60.0,
                 max_attempts: int = 10, backoff_min_s: float = 5.0, backoff_max_s: float = 3600.0,
                 batch: int = 200, random_fraction: Callable[[], float] = random.random,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self._store = store
        self._reactor = reactor
        self._threadpool = threadpool
        self.notifiers = dict(notifiers)
        self._public_url = public_url
        self._poll_s = poll_s
        self._coalesce = dt.timedelta(seconds=coalesce_s)
        self._max_attempts = max_attempts
        self._backoff_min_s = backoff_min_s
        self._backoff_max_s = backoff_max_s
        self._batch = batch
        self._random = random_fraction
        self._clock = clock or (lambda: dt.datetime.fromtimestamp(reactor.seconds(), dt.UTC))
        self._paused: dict[str, dt.datetime] = {}    # channel -> until (rate limited)
        self._lock = threading.Lock()
        self._loop: task.LoopingCall | None = None
        self._running: defer.Deferred | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        self._loop = task.LoopingCall(self.poll)
        self._loop.clock = self._reactor
        self._loop.start(self._poll_s, now=True).addErrback(
            lambda failure: log.failure("notification loop stopped", failure))

    @defer.inlineCallbacks
    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._running is not None:
            yield self._running
        for notifier in self.notifiers.values():
            try:
                notifier.close()
            except Exception:
                log.failure("closing the {channel} notifier", channel=notifier.channel)

    def poll(self) -> defer.Deferred | None:
        """One cycle on the thread pool, unless one is still running (a full
        outbox batch polls again at once)."""
        if self._running is not None:
            return None
        self._running = deferToThreadPool(self._reactor, self._threadpool, self.run_cycle)
        self._running.addErrback(lambda failure: log.failure("notification cycle failed", failure))

        def done(result):
            self._running = None
            if isinstance(result, tuple) and result[0] >= self._batch:   # more is waiting
                self._reactor.callLater(0, self.poll)
            return result
        self._running.addBoth(done)
        return self._running

    # -- one cycle (blocking: the dispatcher's thread) ------------------------------

    def run_cycle(self) -> tuple[int, int]:
        """Expand the outbox, then send what is due.  Returns (expanded, attempted)."""
        # One batch of the outbox per cycle, then everything due: under a steady
        # stream of events, sending never starves behind expanding.
        items = self._store.pending_outbox(self._batch)
        recipients: dict[int, list] = {}   # organisation -> its recipients, read once
        for item in items:
            organisation = item.device.organisation_id
            if organisation not in recipients:
                recipients[organisation] = self._store.recipients(organisation)
            self._expand(item, recipients[organisation])
        expanded = len(items)
        attempted = 0
        messages: dict[tuple[int, int], PushMessage | None] = {}   # (event, user): one read each
        while True:   # until nothing is due (deliveries that are paused or failed wait)
            due = self._store.due_deliveries(self._clock(), self._batch)
            done = sum(1 for delivery in due if self._attempt(delivery, messages))
            attempted += done
            if len(due) < self._batch or not done:
                return expanded, attempted

    def _expand(self, item: OutboxItem, recipients) -> None:
        event, device = item.event, item.device
        now = self._clock()
        critical = is_critical(event.type, event.attributes)
        new: list[NewDelivery] = []
        coalesced: bool | None = None
        for user, stored, subscriptions, tokens in recipients:
            try:
                preferences = Preferences.from_json(stored)
            except PreferencesError as error:
                log.warn("user {id}: stored preferences ignored: {error}", id=user.id, error=error)
                preferences = Preferences()
            channels = channels_wanted(preferences, subscriptions, event_type=event.type,
                                       attributes=event.attributes, device_id=device.id,
                                       group_id=device.group_id,
                                       available=set(self.notifiers))
            if not channels:
                continue
            quiet = preferences.quiet(now) and not (critical and preferences.critical_override)
            for token in tokens:
                if token.channel not in channels or not is_confirmed(token):
                    continue
                if coalesced is None:
                    coalesced = self._store.recently_notified(
                        device.id, event.type, event.subject, event.event_time - self._coalesce,
                        event.id)
                status = "coalesced" if coalesced else "suppressed" if quiet else "pending"
                new.append(NewDelivery(event.id, token.id, user.id, token.channel,
                                       token_hash(token.token), status))
        self._store.expand_outbox(item.outbox_id, new, now)

    def _attempt(self, delivery: DueDelivery,
                 messages: dict[tuple[int, int], PushMessage | None]) -> bool:
        token = delivery.token
        now = self._clock()
        with self._lock:
            paused_until = self._paused.get(token.channel)
        if paused_until is not None and now < paused_until:
            return False
        if not is_confirmed(token):   # never sent to a target nobody confirmed
            self._store.record_attempt(delivery, now, outcome=FAILED, error="target not confirmed",
                                       status="failed")
            return True
        notifier = self.notifiers.get(token.channel)
        if notifier is None:
            self._store.record_attempt(delivery, now, outcome=FAILED, error="channel not configured",
                                       status="failed")
            return True
        key = (delivery.event_id, delivery.user_id)
        if key not in messages:   # a user with several tokens gets one text, read once
            messages[key] = self._message(delivery)
        message = messages[key]
        if message is None:   # the event is gone (retention): nothing to say
            self._store.record_attempt(delivery, now, outcome=FAILED, error="event purged",
                                       status="failed")
            return True
        try:
            result = notifier.send(PushTarget(token.channel, token.token, token.platform), message)
        except Exception:
            log.failure("{channel} notifier failed on {token}", channel=token.channel,
                        token=mask(token.token))
            result = None
        self._record(delivery, now, result)
        return True

    def _record(self, delivery: DueDelivery, now: dt.datetime, result) -> None:
        if result is None:
            outcome, error, retry_after_s = RETRY, "notifier error", None
        else:
            outcome, error, retry_after_s = result.status, result.error, result.retry_after_s
        if outcome == SENT:
            self._store.record_attempt(delivery, now, outcome=SENT, error=None, status="sent")
        elif outcome == INVALID_TOKEN:
            log.info("{channel} token {token} is dead ({error}); pruned",
                     channel=delivery.token.channel, token=mask(delivery.token.token), error=error)
            self._store.record_attempt(delivery, now, outcome=INVALID_TOKEN, error=error,
                                       status="invalid_token")
        elif outcome == RETRY and delivery.attempts + 1 < self._max_attempts:
            delay_s = self.backoff_s(delivery.attempts, retry_after_s)
            if retry_after_s is not None:   # the gateway asked everyone to wait
                with self._lock:
                    self._paused[delivery.token.channel] = now + dt.timedelta(seconds=retry_after_s)
            self._store.record_attempt(delivery, now, outcome=RETRY, error=error, status="pending",
                                       next_attempt=now + dt.timedelta(seconds=delay_s))
        else:
            self._store.record_attempt(delivery, now, outcome=outcome, error=error, status="failed")

    def backoff_s(self, attempts: int, retry_after_s: float | None) -> float:
        """Seconds before the next attempt after `attempts` failed ones: exponential
        with jitter (0.5..1.0 of the step), never sooner than Retry-After."""
        step = min(self._backoff_max_s, self._backoff_min_s * 2 ** attempts)
        delay = step * (0.5 + 0.5 * self._random())
        return max(delay, retry_after_s or 0.0, MIN_DELAY_S)

    def _message(self, delivery: DueDelivery) -> PushMessage | None:
        found = self._store.notification_context(delivery.event_id)
        if found is None:
            return None
        item, stored = found, self._store.preferences(delivery.user_id)
        try:
            preferences = Preferences.from_json(stored)
        except PreferencesError:
            preferences = Preferences()
        place = item.zone_name if item.event.geofence_id is not None else texts.place_of(
            item.latitude, item.longitude)
        title, body, data = texts.render(item.event, item.device, language=preferences.language,
                                         timezone=preferences.timezone,
                                         public_url=self._public_url, place=place)
        critical = is_critical(item.event.type, item.event.attributes)
        return PushMessage(event_id=item.event.id, title=title, body=body, data=data,
                           critical=critical,
                           collapse_key=f"{item.device.id}-{item.event.type}-{item.event.subject}")


