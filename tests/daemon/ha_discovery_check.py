"""Run by Home Assistant's Python: validate discovery configs (JSON on stdin) with HA's schemas.

Prints ``{topic: "ok" | "<error>"}``. Used by test_discovery.py; not collected by pytest.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile

from homeassistant.components.mqtt import notify, sensor
from homeassistant.core import HomeAssistant


async def main() -> None:
    """Validate every config of stdin with the schema of its component."""
    hass = HomeAssistant(tempfile.mkdtemp())  # templates are validated against an instance
    schemas = {"notify": notify.DISCOVERY_SCHEMA, "sensor": sensor.DISCOVERY_SCHEMA}
    results = {}
    for topic, payload in json.load(sys.stdin).items():
        try:
            schemas[topic.split("/")[1]](payload)
            results[topic] = "ok"
        except Exception as err:  # reported to the test
            results[topic] = f"{type(err).__name__}: {err}"
    sys.stdout.write(json.dumps(results))
    await hass.async_stop(force=True)


asyncio.run(main())
