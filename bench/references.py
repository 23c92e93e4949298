"""The two references measured in the same run: the receive ceiling and the naive floor."""

from __future__ import annotations

import json
import threading
import time
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


def naive_floor(port: int, count: int, base_url: str, workdir: Path) -> float:
    """Alerts/s of what a user would glue together: POST each message, publish a reply."""
    counter = Counter(count)
    http = httpx.Client(auth=(USER, PASSWORD), timeout=30)
    lock = threading.Lock()

    def on_message(client: Any, _userdata: Any, message: Any) -> None:
        alert = json.loads(message.payload)
        body = {"messages": [{"text": alert["message"], "recipients": [{"dst": alert["to"]}]}]}
        with lock:
            response = http.post(f"{base_url}/jobs", json=body)
        client.publish(f"bench/floor/reply/{alert['id']}", response.text, qos=1)
        counter.hit()

    client = mqtt_client(port, "bench-floor", on_message, ("bench/floor/send",))
    with stopped(client):
        lines = [json.dumps({"id": f"f{i}", "to": "+491701234560", "message": f"floor {i}"})
                 for i in range(count)]
        started = time.time()
        publish_lines(port, "bench/floor/send", lines, workdir)
        if not counter.done.wait(600):
            raise RuntimeError(f"floor: only {counter.count}/{count} messages handled")
    http.close()
    assert counter.last is not None
    return count / max(1e-6, counter.last - started)
