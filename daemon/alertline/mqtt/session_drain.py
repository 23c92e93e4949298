"""Draining the MQTT session of a cluster member that died.

A daemon keeps a persistent session, so that nothing published while it is away is lost. With
shared subscriptions that has a cost: the broker goes on handing the dead member's session its
share of the input (Mosquitto does; MQTT 5 leaves it to the broker), so alerts and acks wait there
until that member is back. A survivor that removed the member therefore connects once with the
member's client id, handles what the session holds with its own handler (the ack of an alert it
now owns stops that alert), leaves the share group on that session so nothing more is queued
there, and disconnects. Should the member come back meanwhile, the broker hands it the session
and this drain ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from alertline.mqtt.bridge import MessageHandler, MqttBridge

_LOGGER = logging.getLogger(__name__)

QUIET_SECONDS = 1.0  # nothing more arrived for this long: the session is empty
MAX_SECONDS = 30.0


async def drain_session(template: MqttBridge, client_id: str, *, handler: MessageHandler,
                        ordered: Callable[[str], bool], share_group: str) -> None:
    """Handle what the session of ``client_id`` holds, as ``template``'s daemon would, then
    leave its share group."""
    bridge = MqttBridge(dataclasses.replace(template.settings, client_id=client_id),
                        status_topic=template.status_topic,
                        subscriptions=template.subscriptions, handler=handler, ordered=ordered,
                        retained_subscriptions=list(template.retained_subscriptions),
                        share_group=share_group)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MAX_SECONDS
    await bridge.start()
    try:
        await asyncio.wait_for(bridge.wait_ready(), MAX_SECONDS)
        bridge.leave_share_group()
        seen = -1
        # the queued messages come at once after the connect: wait until they stop coming
        while bridge.stats["received"] != seen and loop.time() < deadline:
            seen = bridge.stats["received"]
            await asyncio.sleep(QUIET_SECONDS)
        bridge.stop_accepting()
        await bridge.drain(max(1.0, deadline - loop.time()))
    except TimeoutError:
        _LOGGER.warning("the MQTT session %s of a stopped member could not be drained", client_id)
    finally:
        await bridge.stop()
    _LOGGER.info("drained the MQTT session %s of a stopped member: %d messages", client_id,
                 bridge.stats["received"])
