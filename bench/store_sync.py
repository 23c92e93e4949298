"""``python -m bench.store_sync``: what ``synchronous=FULL`` costs the store, and bytes per alert.

The store commits the way the daemon does: many concurrent callers share one transaction (group
commit), and a lone caller gets a transaction of its own. Both are timed with ``synchronous=FULL``
(the store's setting: the WAL is synced at every commit) and with ``NORMAL`` (synced only at
checkpoints: a power loss can undo the last commits), on a file in ``BENCH_DIR`` (default: the
system's temporary directory, so measure on the disk the store will live on).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from alertline.model import Alert, AlertStatus, Channel, Delivery, DeliveryState, Recipient
from alertline.store import intents
from alertline.store.intents import Intent
from alertline.store.sqlite import Phase, SqliteStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _alert_ops(alert_id: str) -> list[Intent]:
    recipient = Recipient("+491701234560")
    alert = Alert(id=alert_id, message="Water leak in the basement", recipients=(recipient,),
                  channels=(Channel.SMS,), created_at=NOW)
    delivery = Delivery(id=f"{alert_id}-1", alert_id=alert_id, recipient=recipient,
                        channel=Channel.SMS, provider="sim", state=DeliveryState.PENDING,
                        created_at=NOW, updated_at=NOW)
    return [intents.insert_alert(alert, AlertStatus(), "accepted", False, [f"k:{alert_id}"]),
            intents.save_deliveries([(delivery, Phase.QUEUED, None)]),
            intents.events([(alert_id, None, NOW, "accepted", None, None, None, "bench")])]


async def _rate(directory: Path, synchronous: str, count: int,
                concurrency: int) -> tuple[float, float]:
    """Alerts committed per second by ``concurrency`` callers at a time, and bytes per alert."""
    path = directory / f"bench-{synchronous}-{concurrency}.db"
    store = SqliteStore(path)
    await store.open()
    # the store always opens with FULL; the bench alone turns it down to compare
    await store._run(store.conn.execute, f"PRAGMA synchronous={synchronous}")
    started = time.perf_counter()
    for start in range(0, count, concurrency):
        await asyncio.gather(*(store.commit(_alert_ops(f"{synchronous}-{i}"))
                               for i in range(start, min(count, start + concurrency))))
    seconds = time.perf_counter() - started
    size = await store.size()
    await store.close()
    return count / seconds, size.bytes_per_alert


async def _main() -> None:
    count = int(os.environ.get("BENCH_STORE_N", "3000"))
    with tempfile.TemporaryDirectory(prefix="alertline-store-bench-",
                                     dir=os.environ.get("BENCH_DIR")) as tmp:
        directory = Path(tmp)
        for concurrency, label in ((1, "one caller (a commit each)"),
                                   (100, "100 concurrent callers (group commit)")):
            normal, _ = await _rate(directory, "NORMAL", count, concurrency)
            full, per_alert = await _rate(directory, "FULL", count, concurrency)
            print(f"{label}: NORMAL {normal:,.0f} alerts/s, FULL {full:,.0f} alerts/s "
                  f"({full / normal:.0%}); {per_alert:,.0f} bytes per alert (file + WAL)")


if __name__ == "__main__":
    asyncio.run(_main())
