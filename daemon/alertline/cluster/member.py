"""One daemon's membership of a cluster: its lease, the alerts it takes over, the outbox lease,
and the acks, cancels and resolves it hands to other members.

Daemons sharing a PostgreSQL store (``store.url``) are *members*. Each renews its lease every
third of ``cluster.lease``; a member that stops renewing (killed, cut off, paused) is removed by the
first survivor that notices once its lease ran out, and its open alerts become that survivor's
(:meth:`ClusterStore.claim_orphans`): their work resumes as after a restart, so open deliveries are
polled again, escalations go on and what was in flight is settled with the provider. The broker
keeps handing a dead member's persistent session its share of the input, so the survivor is
also told its MQTT client id (``on_sessions_left``) to drain that session. A member
whose own lease was taken over learns it when renewing (or when its next write is fenced) and
must stop: ``on_evicted`` is called once.

One member at a time holds the ``outbox`` lease and publishes the shared outbox (a member that
lost the broker gives it up); the others add to it. An ack, cancel, resolve or pushed status for
an open alert that another member owns becomes a command in the store; the owner (or, after its
lease ran out, the survivor that took the alert over) carries it out, and the member that
received it answers with the report once it was. Lease renewals and claims use a connection of
their own, so a member busy with work is not taken for dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from alertline.errors import NotFoundError
from alertline.http.metrics import Family
from alertline.model import Report
from alertline.providers.base import StatusUpdate
from alertline.store.errors import StoreError, StoreFencedError
from alertline.store.protocol import ClusterStore
from alertline.store.stored import Command, Member

if TYPE_CHECKING:  # handed the engine by its host (the daemon)
    from alertline.engine.core import Engine

_LOGGER = logging.getLogger(__name__)

OUTBOX_LEASE = "outbox"
CLAIM_BATCH = 100  # alerts resumed at once: the event loop must not block for long
COMMAND_POLL_SECONDS = 0.25


def member_name(configured: str | None) -> str:
    """This daemon's member name: the configured one, else ``<host>:<pid>:<random>``."""
    if configured:
        return configured
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class ClusterMember:
    """This daemon in the cluster (see the module's text)."""

    def __init__(self, store: ClusterStore, engine: Engine, *, lease: float,
                 name: str | None = None, on_evicted: Callable[[], None] = lambda: None,
                 on_outbox: Callable[[bool], None] = lambda held: None,
                 can_publish: Callable[[], bool] = lambda: True, client_id: str | None = None,
                 on_sessions_left: Callable[[list[str]], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.engine = engine
        self.lease = lease
        self.name = member_name(name)
        self.on_evicted = on_evicted
        self.on_outbox = on_outbox
        self.can_publish = can_publish
        self.client_id = client_id
        self.on_sessions_left = on_sessions_left
        self.outbox_held = False
        self.evicted = False
        self.takeovers = 0
        self.alerts_taken = 0
        self.store_reachable = True
        self.members: list[Member] = []
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def join(self) -> None:
        """Register in the store (before the engine resumes: it then loads only the alerts
        this member owns) and hook into the engine."""
        await self.store.join(self.name, socket.gethostname(), os.getpid(), self.lease,
                              self.client_id)
        self.engine.forward = self.forward
        self.engine.policy.reserve_sends = self.store.reserve
        _LOGGER.info("joined the cluster as %s (lease %.0fs)", self.name, self.lease)

    def start(self) -> None:
        """Start renewing, claiming and carrying out commands."""
        self._tasks = [asyncio.create_task(self._keep_lease()),
                       asyncio.create_task(self._keep_taking_over()),
                       asyncio.create_task(self._carry_out_commands())]

    async def stop(self) -> None:
        """Stop the loops and leave the cluster, so survivors take over at once."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._set_outbox(False)
        if not self.evicted:
            with contextlib.suppress(StoreError):
                await self.store.leave(self.name)

    # -- the lease -------------------------------------------------------------------------

    async def _keep_lease(self) -> None:
        """Renew (and hold the outbox) every third of a lease, whatever else runs: a long
        take-over or a session drain must not let this member's own lease run out."""
        await self._every_third(self.renew)

    async def _keep_taking_over(self) -> None:
        await self._every_third(self.take_over_orphans)

    async def _every_third(self, step: Callable[[], Awaitable[None]]) -> None:
        while not self.evicted:
            try:
                await step()
            except StoreFencedError:
                self._evict()
            except StoreError as err:
                self.store_reachable = False
                _LOGGER.warning("cluster lease or take-over not done now (%s); retrying", err)
            await asyncio.sleep(self.lease / 3)

    async def tick(self) -> None:
        """One round of both loops: renew, take over what no live member owns."""
        await self.renew()
        if not self.evicted:
            await self.take_over_orphans()
            self.members = await self.store.members()

    async def renew(self) -> None:
        """Renew the lease; hold the outbox lease if free (give it up without a broker)."""
        if not await self.store.renew(self.name, self.lease):
            self._evict()
            return
        self.store_reachable = True
        if self.can_publish():
            self._set_outbox(await self.store.hold_lease(OUTBOX_LEASE, self.name, self.lease))
        elif self.outbox_held:  # no broker here: let a member that has one publish
            await self.store.release_lease(OUTBOX_LEASE, self.name)
            self._set_outbox(False)
        self.members = await self.store.members()

    async def take_over_orphans(self) -> None:
        """Remove members whose lease ran out, drain their sessions, resume their alerts."""
        sessions = [c for c in await self.store.remove_expired(self.name)
                    if c is not None and c != self.client_id]
        if sessions and self.on_sessions_left is not None:
            # first what the broker queued for them (acks among it): handled, or left as
            # commands that the take-over below carries out before any timer runs
            await self.on_sessions_left(sessions)
        while not self.evicted and \
                (ids := await self.store.claim_orphans(self.name, CLAIM_BATCH)):
            _LOGGER.warning("taking over %d open alerts from a cluster member that stopped",
                            len(ids))
            self.takeovers += 1
            self.alerts_taken += len(ids)
            claimed = set(ids)
            ends = [c for c in await self.store.commands_for(self.name, limit=10_000)
                    if c.alert_id in claimed and c.kind in ("ack", "cancel", "resolve")]
            await self.engine.take_over(await self.store.load_work_of(ids), ends)
            if ends:
                await self.store.commands_done([c.seq for c in ends])
            if len(ids) < CLAIM_BATCH:
                break
        await self.engine.policy.load()  # caps: see what the other members counted

    def _evict(self) -> None:
        if self.evicted:
            return
        self.evicted = True
        self._set_outbox(False)
        _LOGGER.error("this daemon (%s) lost its cluster lease and its alerts were taken "
                      "over by another member; stopping", self.name)
        self.on_evicted()

    def _set_outbox(self, held: bool) -> None:
        if held != self.outbox_held:
            self.outbox_held = held
            _LOGGER.info("%s the outbox lease", "took" if held else "gave up")
            self.on_outbox(held)

    # -- commands --------------------------------------------------------------------------

    async def forward(self, alert_id: str, kind: str, data: dict[str, object]) -> Report | None:
        """Hand ``kind`` for an open alert this engine does not hold to its owner; the report
        once the owner carried it out (or, after two leases, as it stands: the command stays
        and is carried out by whoever owns the alert next). None for a final alert: nothing
        runs for it anywhere, so the engine records ``kind`` itself."""
        found = await self.store.owner_of(alert_id)
        if found is None:
            raise NotFoundError(f"unknown alert {alert_id!r}")
        _, final, alive = found
        if final:
            return None
        seq = await self.store.send_command(alert_id, kind, dict(data))
        if not alive:  # carried out first thing by whoever takes the alert over
            return await self.engine.report(alert_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self.lease + 5
        while loop.time() < deadline:  # the owner is another process: ask the store
            if not await self.store.command_pending(seq):
                break
            await asyncio.sleep(COMMAND_POLL_SECONDS)
        return await self.engine.report(alert_id)

    async def _carry_out_commands(self) -> None:
        while True:
            try:
                done = [command.seq for command in await self.store.commands_for(self.name)
                        if await self._carry_out(command)]
                if done:
                    await self.store.commands_done(done)
            except StoreFencedError:
                self._evict()
                return
            except StoreError as err:
                _LOGGER.debug("cluster commands not read now: %s", err)
            if self.outbox_held:
                self.on_outbox(True)  # other members' reports may be waiting
            await asyncio.sleep(COMMAND_POLL_SECONDS)

    async def _carry_out(self, command: Command) -> bool:
        """Carry out ``command``; False if its alert, just taken over, is not loaded yet."""
        engine, data = self.engine, command.data
        if engine.record(command.alert_id) is None:
            found = await self.store.owner_of(command.alert_id)
            if found is not None and not found[1]:
                return False  # open but not resumed yet: the next round
        try:
            if command.kind == "ack":
                await engine.ack(command.alert_id, by=command.by, via=command.via)
            elif command.kind == "cancel":
                await engine.cancel(command.alert_id, by=command.by)
            elif command.kind == "resolve":
                await engine.resolve(command.alert_id, by=command.by)
            elif command.kind == "push":
                await engine.apply_push(str(data["provider"]),
                                        [StatusUpdate.from_json(data["update"])])
            else:
                _LOGGER.error("unknown cluster command %r for %s", command.kind,
                              command.alert_id)
        except (StoreFencedError, asyncio.CancelledError):
            raise
        except Exception:
            _LOGGER.exception("cluster command %s for %s failed", command.kind,
                              command.alert_id)
        return True

    # -- what hosts show -------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The ``cluster`` part of ``/healthz``: this member, the members the store listed at
        the last renewal, the leases held, whether the store answered then."""
        return {"member": self.name, "lease_seconds": self.lease,
                "store": "reachable" if self.store_reachable else "unreachable",
                "leases": {"alerts": self.engine.open_alerts, "outbox": self.outbox_held},
                "takeovers": self.takeovers, "alerts_taken_over": self.alerts_taken,
                "members": [{"member": m.name, "host": m.host, "pid": m.pid,
                             "started_at": m.started_at.isoformat(),
                             "expires_in": round(m.expires_in, 1), "open_alerts": m.alerts,
                             "self": m.name == self.name} for m in self.members]}

    def families(self) -> list[Family]:
        """This member's cluster metrics (each daemon exposes its own ``/metrics``)."""
        info = Family("alertline_cluster_member_info", "gauge",
                      "1, labelled with this daemon's cluster member name")
        info.add(1, member=self.name)
        members = Family("alertline_cluster_members", "gauge",
                         "Cluster members with an unexpired lease, as last seen")
        members.add(sum(1 for m in self.members if m.expires_in > 0))
        outbox = Family("alertline_cluster_outbox_lease", "gauge",
                        "1 while this daemon holds the outbox lease (publishes the reports)")
        outbox.add(1 if self.outbox_held else 0)
        taken = Family("alertline_cluster_alerts_taken_over", "counter",
                       "Open alerts this daemon took over from members that stopped")
        taken.add(self.alerts_taken)
        return [info, members, outbox, taken]
