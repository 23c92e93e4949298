"""Inbound messages in arrival order: what each one waits for, and which acks may leave.

MQTT requires a client to acknowledge QoS 1 messages in the order they arrived, and alertline
acknowledges a message only once its handler has finished (an alert: committed to the store). So
handlers run concurrently, and a finished message's PUBACK waits for every message before it.
Messages on ordered topics (ack, cancel, resolve) also wait for the handling of every message
before them, and every message waits for the last ordered one. Across a lost connection the
broker redelivers what was not acknowledged; a redelivery of a message still being handled waits
for that handling instead of repeating it, and a redelivery of one already handled (its PUBACK
written into a connection that was already dead, or never sent) is acknowledged without handling
it again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MessageKey = tuple[int, str, bytes]  # packet id, topic, payload: how a redelivery is recognised

RECENT_ACKS = 1024
"""Handled messages remembered per connection: a PUBACK written just before the connection is
found dead may never have reached the broker, which then redelivers the message."""


@dataclass(slots=True)
class Unacked:
    """A received message whose PUBACK has not left: it waits for ``done`` and its elders."""

    mid: int
    qos: int
    key: MessageKey
    done: asyncio.Future[None]


class ArrivalOrder:
    """The unacknowledged messages of one connection, oldest first (all on the event loop)."""

    def __init__(self, ordered: Callable[[str], bool]) -> None:
        self._ordered = ordered
        self._order: deque[Unacked] = deque()
        self._orphans: dict[MessageKey, asyncio.Future[None]] = {}
        self._recent: deque[Unacked] = deque(maxlen=RECENT_ACKS)  # handled on this connection
        self._barrier: asyncio.Future[None] | None = None
        self._since_barrier: set[asyncio.Future[None]] = set()  # unfinished, since the last

    def __len__(self) -> int:
        return len(self._order)

    def arrive(self, mid: int, qos: int, topic: str, payload: bytes, *, dup: bool,
               done: asyncio.Future[None]) -> tuple[Unacked, asyncio.Future[None] | None]:
        """Record a message (QoS 0 needs no ack); with it, for a redelivery of a message still
        being handled from the previous connection, that handling."""
        entry = Unacked(mid, qos, (mid, topic, payload), done)
        if qos > 0:
            self._order.append(entry)
        first = self._orphans.pop(entry.key, None) if dup else None
        return entry, first

    def dependencies(self, topic: str, done: asyncio.Future[None]) -> list[asyncio.Future[None]]:
        """What must finish first: an ordered message (ack, cancel...) waits for everything
        before it; any message waits for the last ordered one."""
        barrier = self._barrier
        if self._ordered(topic):
            waits = [*self._since_barrier, *([barrier] if barrier else [])]
            self._barrier, self._since_barrier = done, set()
        else:
            waits = [barrier] if barrier is not None else []
            since = self._since_barrier
            since.add(done)
            done.add_done_callback(since.discard)
        return [future for future in waits if not future.done()]

    def complete(self, entry: Unacked) -> list[Unacked]:
        """``entry`` is handled: the messages whose acks may leave now, in arrival order."""
        if not entry.done.done():
            entry.done.set_result(None)
        ready = []
        while self._order and self._order[0].done.done():
            ready.append(self._order.popleft())
        self._recent.extend(ready)
        return ready

    def connection_lost(self) -> None:
        """The broker redelivers every message it holds no PUBACK for: answer each with its first
        handling, whether still under way or finished on this connection (its PUBACK may have
        died with the socket). Orphans of earlier connections that finished are forgotten: the
        broker redelivers right after resuming, so theirs came back or never will."""
        kept = {key: done for key, done in self._orphans.items() if not done.done()}
        for entry in (*self._recent, *self._order):
            kept[entry.key] = entry.done
        self._orphans = kept
        self._order.clear()
        self._recent.clear()

    def session_lost(self) -> None:
        """A new session: nothing of the old one comes back."""
        self._orphans.clear()
        self._recent.clear()
