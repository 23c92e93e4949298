"""``alertline status`` without an alert id: the store at a glance, and the cluster sharing it.

It only reads, so it runs beside the daemons: on the embedded SQLite store without its lock, on a
shared PostgreSQL store from any host that reaches the database.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from alertline.config.sections import Config
from alertline.store.select import open_store, shared


async def store_status(config: Config) -> dict[str, Any]:
    """Counts from the store, and the cluster's members when the store is shared."""
    store = open_store(config, exclusive=False)
    await store.open()
    try:
        stats = await store.stats()
        body: dict[str, Any] = {"store": store.path, "alerts_open": stats["alerts_open"],
                                "alerts_total": stats["alerts_total"],
                                "outbox": stats["outbox"], "deliveries": stats["deliveries"]}
        cluster = shared(store)
        if cluster is not None:
            body["members"] = [{"member": m.name, "host": m.host, "pid": m.pid,
                                "started_at": m.started_at.isoformat(),
                                "expires_in": round(m.expires_in, 1), "open_alerts": m.alerts}
                               for m in await cluster.members()]
        return body
    finally:
        await store.close()


def print_store_status(body: dict[str, Any], *, as_json: bool) -> None:
    """``body`` as JSON, or as a few lines for a person."""
    if as_json:
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        return
    lines = [f"store: {body['store']}",
             f"alerts: {body['alerts_open']} open, {body['alerts_total']} kept; "
             f"{body['outbox']} MQTT messages waiting in the outbox"]
    if "members" in body:
        lines.append(f"cluster: {len(body['members'])} member(s)")
        for m in body["members"]:
            lease = f"lease {m['expires_in']:.0f}s left" if m["expires_in"] > 0 \
                else "lease expired (a survivor takes its alerts over)"
            lines.append(f"  {m['member']} on {m['host']} (pid {m['pid']}): "
                         f"{m['open_alerts']} open alerts, {lease}")
    sys.stdout.write("\n".join(lines) + "\n")
