"""Resuming after a restart: reload open alerts, requeue what was not sent, settle what is in doubt.

A delivery caught "in flight" (handed to a provider, answer not stored) is in doubt: the provider
may or may not have it. It is asked (``Provider.find_submitted``) where the API can tell; it is
resent where resending is harmless (``capabilities.idempotent_submit``); otherwise it is marked
failed rather than risk a second call or SMS. The functions here decide; :class:`Recovery` hands
their decisions to the ledger.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from alertline.clock import Clock
from alertline.engine.decisions import Advance, Annotate, Decision, Queue, SetPhase
from alertline.engine.escalation import EscalationRunner
from alertline.engine.ledger import Ledger
from alertline.engine.policy import Policy
from alertline.engine.scheduler import Scheduler
from alertline.engine.tracking import Tracker
from alertline.errors import ProviderError, RateLimitedError, TransientError
from alertline.model import Delivery, DeliveryState
from alertline.providers.base import Batch, BatchItem, Provider, Submission, SubmittedItem
from alertline.records import AlertRecord
from alertline.redact import Redactor
from alertline.states import Phase
from alertline.store.stored import OpenWork, StoredDelivery

_LOGGER = logging.getLogger(__name__)

INTERRUPTED = "interrupted while being submitted; not resent, to avoid a duplicate call or SMS"
RESENT = "resent after an interruption while it was being submitted: the provider may have it twice"
RETRY_SECONDS = 30.0

Entries = list[tuple[AlertRecord, Delivery]]


# -- decisions -----------------------------------------------------------------------------

def requeue_plan(record: AlertRecord) -> tuple[list[Delivery], list[Delivery]]:
    """The pending deliveries of ``record`` never handed over (to queue again), and those
    caught in flight (in doubt)."""
    requeue, in_doubt = [], []
    for delivery in record.deliveries.values():
        if delivery.state is not DeliveryState.PENDING:
            continue
        phase = record.phase(delivery.id)
        if phase is Phase.IN_FLIGHT:
            in_doubt.append(delivery)
        elif phase is Phase.QUEUED:
            requeue.append(delivery)
    return requeue, in_doubt


def resend_decisions(delivery: Delivery, *, unknown: bool = False) -> list[Decision]:
    """Queue ``delivery``, caught in flight, again: the provider says it never got it, or
    (``unknown``) it cannot tell and resending is harmless, and then the report marks it a
    possible duplicate."""
    marked = [Annotate(delivery.id, {**delivery.details, "possible_duplicate": True,
                                     "possible_duplicate_reason": RESENT})] if unknown else []
    return [SetPhase(delivery.id, Phase.QUEUED), *marked, Queue((delivery.id,))]


def fail_decision(delivery: Delivery, now: datetime) -> Advance:
    """Fail a delivery in doubt rather than risk sending it twice."""
    return Advance(delivery.id, DeliveryState.FAILED, now, {"reason": INTERRUPTED})


# -- the restart ---------------------------------------------------------------------------

class Recovery:
    """Brings an engine's open work back after a restart."""

    def __init__(self, ledger: Ledger, providers: Mapping[str, Provider], *, clock: Clock,
                 scheduler: Scheduler, redactor: Redactor, policy: Policy,
                 escalations: EscalationRunner, tracker: Tracker) -> None:
        self.ledger = ledger
        self.providers = providers
        self.clock = clock
        self.scheduler = scheduler
        self.redactor = redactor
        self.policy = policy
        self.escalations = escalations
        self.tracker = tracker
        self._batches = 0

    async def resume(self) -> None:
        """Load every unfinished alert (in a cluster: every one this daemon owns) into the
        ledger and restart its work."""
        await self.policy.load()
        await self.take_over(await self.ledger.store.load_open_work())

    async def take_over(self, work: OpenWork, *, only: set[str] | None = None,
                        prelude: Callable[[], set[str]] = set) -> None:
        """Restart the work of ``work``'s alerts: at start, or (``only`` naming them) alerts
        claimed from a cluster member that stopped; other alerts' timers stay untouched.
        ``prelude`` runs once the alerts are loaded, before any timer or send can run (what was
        decided for them meanwhile, e.g. an ack); it returns the alerts it changed."""
        ledger = self.ledger
        by_alert: dict[str, list[StoredDelivery]] = defaultdict(list)
        for item in work.deliveries:
            by_alert[item.delivery.alert_id].append(item)
        in_doubt: Entries = []
        for alert_id, (alert, status) in work.alerts.items():
            record = AlertRecord.from_store(alert, status, by_alert.get(alert_id, []))
            ledger.adopt(record)
            requeue, doubtful = requeue_plan(record)
            if requeue:
                ledger.apply(record, [Queue(tuple(d.id for d in requeue))])
            in_doubt += [(record, d) for d in doubtful]
        ended = prelude()
        ledger.apply(None, self.escalations.resume(work.timers, ledger.record, only=only))
        changed = await self._settle(in_doubt) | ended
        await ledger.save(set(work.alerts) - changed, publish=False)
        await ledger.save(changed)
        self.tracker.resume(work.submissions)
        for alert_id in list(work.alerts):
            resumed = ledger.record(alert_id)
            if resumed is not None and resumed.report(self.clock.now()).final:
                await ledger.emit(resumed)
        if work.alerts:
            _LOGGER.info("resumed %d unfinished alerts", len(work.alerts))

    async def _settle(self, in_doubt: Entries) -> set[str]:
        """Ask, resend or fail each in-doubt delivery; returns the alerts whose state changed."""
        by_provider: dict[str, Entries] = defaultdict(list)
        for record, delivery in in_doubt:
            by_provider[delivery.provider].append((record, delivery))
        changed: set[str] = set()
        for name, entries in by_provider.items():
            provider = self.providers.get(name)
            if provider is None:
                changed |= self._fail(entries)
                continue
            items = [SubmittedItem(d.id, d.recipient.number) for _, d in entries]
            since = min(d.created_at for _, d in entries) - timedelta(minutes=1)
            try:
                found = await provider.find_submitted(items, since)
            except NotImplementedError:
                if provider.capabilities.idempotent_submit:
                    self._resend(entries, unknown=True)
                else:
                    changed |= self._fail(entries)
                continue
            except (TransientError, RateLimitedError) as err:
                _LOGGER.warning("%s could not say what it received before the restart (%s); "
                                "asking again in %.0fs", name, self.redactor.text(str(err)),
                                RETRY_SECONDS)
                # one key per batch: a take-over's batch must not replace the restart's
                self._batches += 1
                self.scheduler.call_at(
                    f"settle:{name}:{self._batches}",
                    self.clock.now() + timedelta(seconds=RETRY_SECONDS), self._later(entries))
                continue
            except ProviderError as err:
                _LOGGER.warning("%s could not find out what it received before the restart: %s",
                                name, self.redactor.text(str(err)))
                changed |= self._fail(entries)
                continue
            known: set[str] = set()
            for submission in found:
                await self._adopt(entries, submission)
                known |= {item.delivery_id for item in submission.items}
            self._resend([(r, d) for r, d in entries if d.id not in known])
        return changed

    def _later(self, entries: Entries) -> Callable[[], Awaitable[None]]:
        return lambda: self._settle_later(entries)

    async def _settle_later(self, entries: Entries) -> None:
        """A later attempt to settle deliveries whose provider could not answer at start."""
        still = [(r, d) for r, d in entries if self.ledger.record(r.alert.id) is r and
                 r.deliveries.get(d.id) is d and d.state is DeliveryState.PENDING]
        changed = await self._settle(still)
        await self.ledger.settle(changed)

    def _resend(self, entries: Entries, *, unknown: bool = False) -> None:
        for record, delivery in entries:
            self.ledger.apply(record, resend_decisions(delivery, unknown=unknown))

    def _fail(self, entries: Entries) -> set[str]:
        changed = set()
        for record, delivery in entries:
            if self.ledger.apply(record, [fail_decision(delivery, self.clock.now())]):
                changed.add(record.alert.id)
        return changed

    async def _adopt(self, entries: Entries, found: Submission) -> None:
        """Track the deliveries the provider reports it already has, as if just submitted."""
        wanted = {item.delivery_id for item in found.items}
        items = tuple(BatchItem(delivery_id=d.id, alert_id=r.alert.id, number=d.recipient.number,
                                text="", template="") for r, d in entries if d.id in wanted)
        if items:
            await self.tracker.submitted(Batch(channel=entries[0][1].channel, items=items), found)
