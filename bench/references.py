"""The references measured in the same run: the receive ceiling and two hand-written bridges.

The bridges are what people glue together instead of alertline: a subscriber that POSTs each
message to the provider as one request and publishes the answer. The sequential one does what a
30-line script or a Node-RED flow does (one request at a time); the concurrent one keeps 32
requests in flight. Neither persists, validates, retries or tracks anything.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.harness import PASSWORD, USER, Counter, mqtt_client, publish_lines, stopped


def receive_ceiling(port: int, count: int, workdir: Path) -> float:
    """Messages/s a paho subscriber that only counts can receive from ``mosquitto_pub -l``."""
    counter = Counter(count)
    client = mqtt_client(port, "bench-ceiling", lambda *_: counter.hit(), ("bench/ceiling",))
    with stopped(client):
        publish_lines(port, "bench/ceiling", [f"m{i}" for i in range(count)], workdir)
        if not counter.done.wait(120):
            raise RuntimeError(f"ceiling: only {counter.count}/{count} messages arrived")
    assert counter.first is not None and counter.last is not None
    return count / max(1e-6, counter.last - counter.first)


def bridge(port: int, count: int, base_url: str, workdir: Path, *, concurrency: int) -> float:
    """Alerts/s of a bridge with ``concurrency`` provider requests in flight (1: sequential)."""
    counter = Counter(count)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    http = httpx.Client(auth=(USER, PASSWORD), timeout=60, limits=limits)
    pool = ThreadPoolExecutor(concurrency)
    topic = f"bench/bridge{concurrency}"
    lock = threading.Lock()

    def forward(client: Any, payload: bytes) -> None:
        alert = json.loads(payload)
        body = {"messages": [{"text": alert["message"], "recipients": [{"dst": alert["to"]}]}]}
        if concurrency == 1:
            with lock:
                response = http.post(f"{base_url}/jobs", json=body)
        else:
            response = http.post(f"{base_url}/jobs", json=body)
        client.publish(f"{topic}/reply/{alert['id']}", response.text, qos=1)
        counter.hit()

    def on_message(client: Any, _userdata: Any, message: Any) -> None:
        if concurrency == 1:
            forward(client, message.payload)  # in paho's thread: one at a time, like a script
        else:
            pool.submit(forward, client, message.payload)

    client = mqtt_client(port, f"bench-bridge{concurrency}", on_message, (f"{topic}/send",))
    with stopped(client):
        lines = [json.dumps({"id": f"b{i}", "to": "+491701234560", "message": f"bridge {i}"})
                 for i in range(count)]
        started = time.time()
        publish_lines(port, f"{topic}/send", lines, workdir)
        if not counter.done.wait(900):
            raise RuntimeError(f"bridge: only {counter.count}/{count} messages handled")
    pool.shutdown()
    http.close()
    assert counter.last is not None
    return count / max(1e-6, counter.last - started)
