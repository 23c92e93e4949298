"""Resuming after a restart: reload open alerts, requeue what was not sent, settle what is in doubt.

A delivery caught "in flight" (handed to a provider, answer not stored) is in doubt: the provider
may or may not have it. It is asked (``Provider.find_submitted``) where the API can tell; it is
resent where resending is harmless (``capabilities.idempotent_submit``); otherwise it is marked
failed rather than risk a second call or SMS.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING

from alertline.errors import ProviderError, RateLimitedError, TransientError
from alertline.model import Delivery, DeliveryState
from alertline.providers.base import Batch, BatchItem, Submission, SubmittedItem
from alertline.records import AlertRecord
from alertline.store.sqlite import Phase, StoredDelivery

if TYPE_CHECKING:
    from alertline.engine.core import Engine

_LOGGER = logging.getLogger(__name__)

INTERRUPTED = "interrupted while being submitted; not resent, to avoid a duplicate call or SMS"
RETRY_SECONDS = 30.0


async def resume_open_work(engine: Engine) -> None:
    """Load every unfinished alert into ``engine`` and restart its work."""
    await engine.policy.load()
    work = await engine.store.load_open_work()
    by_alert: dict[str, list[StoredDelivery]] = defaultdict(list)
    for item in work.deliveries:
        by_alert[item.delivery.alert_id].append(item)
    in_doubt: list[tuple[AlertRecord, Delivery]] = []
    for alert_id, (alert, status) in work.alerts.items():
        stored = by_alert.get(alert_id, [])
        record = AlertRecord(alert=alert, status=status,
                             deliveries={s.delivery.id: s.delivery for s in stored},
                             phases={s.delivery.id: (s.phase, s.submission_id) for s in stored})
        engine._open[alert_id] = record
        in_doubt.extend(_requeue(engine, record))
    engine.escalations.resume(work.timers)
    changed = await _settle(engine, in_doubt)
    await engine._save(set(work.alerts) - changed, publish=False)
    await engine._save(changed)
    engine.tracker.resume(work.submissions)
    for alert_id in list(work.alerts):
        resumed = engine.record(alert_id)
        if resumed is not None and resumed.report(engine.clock.now()).final:
            await engine._emit(resumed)
    if work.alerts:
        _LOGGER.info("resumed %d unfinished alerts", len(work.alerts))


def _requeue(engine: Engine, record: AlertRecord) -> list[tuple[AlertRecord, Delivery]]:
    """Queue what was never handed over; return the deliveries in doubt."""
    requeue, in_doubt = [], []
    for delivery in list(record.deliveries.values()):
        if delivery.state is not DeliveryState.PENDING:
            continue
        phase, _ = record.phases.get(delivery.id, (Phase.QUEUED, None))
        if phase == Phase.IN_FLIGHT:
            in_doubt.append((record, delivery))
        elif phase == Phase.QUEUED:
            requeue.append(delivery)
    if requeue:
        engine._queue(record, requeue)
    return in_doubt


async def _settle(engine: Engine, in_doubt: list[tuple[AlertRecord, Delivery]]) -> set[str]:
    """Ask, resend or fail each in-doubt delivery; returns the alerts whose state changed."""
    by_provider: dict[str, list[tuple[AlertRecord, Delivery]]] = defaultdict(list)
    for record, delivery in in_doubt:
        by_provider[delivery.provider].append((record, delivery))
    changed: set[str] = set()
    for name, entries in by_provider.items():
        provider = engine.providers.get(name)
        if provider is None:
            changed |= _fail(engine, entries)
            continue
        items = [SubmittedItem(d.id, d.recipient.number) for _, d in entries]
        since = min(d.created_at for _, d in entries) - timedelta(minutes=1)
        try:
            found = await provider.find_submitted(items, since)
        except NotImplementedError:
            if provider.capabilities.idempotent_submit:
                _resend(engine, entries)
            else:
                changed |= _fail(engine, entries)
            continue
        except (TransientError, RateLimitedError) as err:
            _LOGGER.warning("%s could not say what it received before the restart (%s); "
                            "asking again in %.0fs", name, engine.redactor.text(str(err)),
                            RETRY_SECONDS)
            engine.scheduler.call_at(
                f"settle:{name}", engine.clock.now() + timedelta(seconds=RETRY_SECONDS),
                lambda entries=entries: _settle_later(engine, entries))  # type: ignore[misc]
            continue
        except ProviderError as err:
            _LOGGER.warning("%s could not find out what it received before the restart: %s",
                            name, engine.redactor.text(str(err)))
            changed |= _fail(engine, entries)
            continue
        known: set[str] = set()
        for submission in found:
            await _adopt(engine, entries, submission)
            known |= {item.delivery_id for item in submission.items}
        _resend(engine, [(r, d) for r, d in entries if d.id not in known])
    return changed


async def _settle_later(engine: Engine, entries: list[tuple[AlertRecord, Delivery]]) -> None:
    """A later attempt to settle deliveries whose provider could not answer at start."""
    still = [(r, d) for r, d in entries if engine.record(r.alert.id) is r and
             r.deliveries.get(d.id) is d and d.state is DeliveryState.PENDING]
    changed = await _settle(engine, still)
    await engine._save(changed)
    await engine._emit_many(changed)


def _resend(engine: Engine, entries: list[tuple[AlertRecord, Delivery]]) -> None:
    """Queue deliveries again: the provider never got them (or resending is harmless)."""
    for record, delivery in entries:
        record.phases[delivery.id] = (Phase.QUEUED, None)
        engine._queue(record, [delivery])


def _fail(engine: Engine, entries: list[tuple[AlertRecord, Delivery]]) -> set[str]:
    """Mark deliveries failed rather than risk sending them twice."""
    changed = set()
    for record, delivery in entries:
        if engine._set_state(record, delivery, DeliveryState.FAILED,
                             engine.clock.now(), reason=INTERRUPTED):
            changed.add(record.alert.id)
    return changed


async def _adopt(engine: Engine, entries: list[tuple[AlertRecord, Delivery]],
                 found: Submission) -> None:
    """Track the deliveries the provider reports it already has, as if just submitted."""
    wanted = {item.delivery_id for item in found.items}
    items = tuple(BatchItem(delivery_id=d.id, alert_id=r.alert.id, number=d.recipient.number,
                            text="", template="") for r, d in entries if d.id in wanted)
    if items:
        await engine.tracker.submitted(Batch(channel=entries[0][1].channel, items=items), found)
