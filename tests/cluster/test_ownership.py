"""Two engines sharing one real PostgreSQL database as cluster members, in one process.

Each test drives the members' lease rounds (:meth:`ClusterMember.tick`) itself, so what happens
when is the test's choice; the real daemons' loops around them are tested in
:mod:`tests.cluster.test_chaos`. Leases are the database's (``now()``), so a member "dies" here
by no longer renewing, and the test waits until the database lets a survivor take over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from alertline.clock import ManualClock
from alertline.cluster.member import ClusterMember
from alertline.engine.core import Engine
from alertline.engine.scheduler import ManualScheduler
from alertline.intake.request import parse_request
from alertline.model import DeliveryState
from alertline.store import intents
from alertline.store.errors import StoreFencedError
from alertline.store.postgres import PostgresStore
from tests.engine_harness import T0, ScriptedProvider, make_config
from tests.postgres import shared_server

LEASE = 1.0


@dataclass
class Node:
    """One member: its engine over its own connection pool to the shared database."""

    engine: Engine
    member: ClusterMember
    provider: ScriptedProvider
    scheduler: ManualScheduler
    evicted: list[bool] = field(default_factory=list)

    @property
    def store(self) -> PostgresStore:
        assert isinstance(self.engine.store, PostgresStore)
        return self.engine.store


class Cluster:
    """Members over one fresh database, on one manual clock."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.url = shared_server().url(shared_server().new_database())
        self.clock = ManualClock(T0)
        self.config = make_config(providers={"sim": {"type": "simulator"}}, **(config or {}))
        self.nodes: list[Node] = []

    async def node(self, name: str, *, max_in_flight: int = 4, **provider: Any) -> Node:
        scheduler = ManualScheduler(self.clock)
        scripted = ScriptedProvider("sim", self.clock, **provider)
        engine = Engine(self.config, PostgresStore(self.url), clock=self.clock,
                        scheduler=scheduler, providers={"sim": scripted},
                        max_in_flight=max_in_flight)
        evicted: list[bool] = []
        member = ClusterMember(engine.store, engine, lease=LEASE,  # type: ignore[arg-type]
                               name=name, on_evicted=lambda: evicted.append(True))
        await engine.start(before_resume=member.join)
        node = Node(engine, member, scripted, scheduler, evicted)
        self.nodes.append(node)
        return node

    async def close(self) -> None:
        for node in self.nodes:
            node.provider.gate.set()
            await node.member.stop()
            with contextlib.suppress(StoreFencedError):  # a member taken over cannot write
                await node.engine.stop(drain_timeout=1.0)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    made = Cluster()
    yield made
    await made.close()


async def accept(node: Node, alert_id: str, **fields: Any) -> None:
    await node.engine.accept(parse_request({"id": alert_id, "to": "+491701234567",
                                            "message": "Water leak", **fields}))


async def until(condition: Any, what: str, within: float = 10.0) -> None:
    """Run ``condition`` (an async callable) until it is true: the database decides when."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        assert loop.time() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.1)


async def test_a_new_alert_is_owned_by_the_member_that_accepted_it(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await accept(a, "al-1")
    await accept(b, "al-2")
    assert await a.store.owner_of("al-1") == ("a", False, True)
    assert await a.store.owner_of("al-2") == ("b", False, True)
    await a.member.tick()
    assert {m.name: m.alerts for m in a.member.members} == {"a": 1, "b": 1}
    assert a.engine.record("al-2") is None and b.engine.record("al-1") is None


async def test_a_survivor_takes_over_after_the_lease_and_the_silent_member_is_fenced(
        cluster: Cluster) -> None:
    a = await cluster.node("a", gated=True, idempotent=True)
    b = await cluster.node("b", idempotent=True)
    await accept(a, "al-1")
    await a.provider.entered.wait()  # handed to the provider: in flight, answer not stored
    assert b.engine.record("al-1") is None

    async def taken() -> bool:
        await b.member.tick()  # only b renews: a's lease runs out
        return b.engine.record("al-1") is not None
    await until(taken, "b takes al-1 over")
    assert await b.store.owner_of("al-1") == ("b", False, True)
    assert [m.name for m in b.member.members] == ["b"]
    # a's delivery was in doubt; the scripted provider cannot tell, resending is harmless: sent
    # again by b, and marked in its report
    await b.engine.drain()
    assert [i.delivery_id for batch in b.provider.batches for i in batch.items] == ["al-1-1"]
    delivery = (await b.engine.report("al-1")).deliveries[0]
    assert delivery.details["possible_duplicate"] is True
    # a may not write any more, and learns it at its next renewal
    with pytest.raises(StoreFencedError):
        await a.store.commit([intents.meta_set("late", "write")])
    await a.member.tick()
    assert a.evicted == [True]


async def test_an_ack_reaching_another_member_is_carried_out_by_the_owner(
        cluster: Cluster) -> None:
    a, b = await cluster.node("a", gated=True), await cluster.node("b")
    await accept(a, "al-1")
    a.member.start()  # a carries out commands as they come
    report = await asyncio.wait_for(b.engine.ack("al-1", by="ops", via="mqtt"), 10)
    assert report.status.acknowledged is not None and report.status.acknowledged.by == "ops"
    record = a.engine.record("al-1")
    assert record is not None and record.status.acknowledged is not None
    assert b.engine.record("al-1") is None  # b never held it


async def test_an_ack_while_the_owner_is_down_waits_for_the_survivor(cluster: Cluster) -> None:
    a, b = await cluster.node("a", gated=True), await cluster.node("b")
    await accept(a, "al-1")  # a then goes silent: no renewals, no commands
    b.member.start()
    report = await asyncio.wait_for(b.engine.ack("al-1", by="ops"), 15)
    assert report.status.acknowledged is not None and report.status.acknowledged.by == "ops"
    assert b.engine.record("al-1") is not None or report.final


async def test_fifty_alerts_at_once_on_two_members_against_a_cap_of_ten() -> None:
    made = Cluster({"limits": {"per_hour": {"sms": 10}}})
    try:
        a, b = await made.node("a"), await made.node("b")
        await asyncio.gather(*(accept(a if n % 2 else b, f"al-{n}") for n in range(50)))
        states = [d.state for n in range(50)
                  for d in (await a.engine.report(f"al-{n}")).deliveries]
        assert states.count(DeliveryState.REJECTED) == 40
        assert len(states) - states.count(DeliveryState.REJECTED) == 10
        assert await a.store.counter("cap:*:hour:sms", T0.replace(minute=0)) == 10
    finally:
        await made.close()


async def test_one_member_at_a_time_holds_the_outbox(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    await a.member.tick()
    await b.member.tick()
    assert (a.member.outbox_held, b.member.outbox_held) == (True, False)

    async def moved() -> bool:
        await b.member.tick()  # a stopped renewing: its outbox lease runs out too
        return b.member.outbox_held
    await until(moved, "b takes the outbox lease")
    health = b.member.health()
    assert health["leases"]["outbox"] is True and health["store"] == "reachable"
    assert [m["member"] for m in health["members"]] == ["b"]


async def test_a_job_whose_alerts_are_taken_over_in_two_batches_is_polled_for_all(
        cluster: Cluster) -> None:
    a = await cluster.node("a", gated=True, max_in_flight=1)
    b = await cluster.node("b")
    await accept(a, "al-0")
    await a.provider.entered.wait()  # the one request slot is taken: the next two wait
    await accept(a, "al-1")
    await accept(a, "al-2")
    a.provider.gate.set()
    await a.engine.drain()
    assert [[i.alert_id for i in batch.items] for batch in a.provider.batches] == [
        ["al-0"], ["al-1", "al-2"]]  # one provider job for al-1 and al-2
    assert await a.store.renew("a", 0.001)  # a's lease runs out now

    async def removed() -> bool:
        await b.store.remove_expired("b")
        return all(m.name != "a" for m in await b.store.members())
    await until(removed, "a's lease ran out and a was removed")
    for alert_id in ("al-0", "al-1", "al-2"):  # one at a time, like claim batches
        assert await b.store.claim_orphans("b", 1) == [alert_id]
        await b.engine.take_over(await b.store.load_work_of([alert_id]))
    await b.scheduler.advance(5)  # the job's poll: the scripted provider delivers every item
    for alert_id in ("al-0", "al-1", "al-2"):
        report = await b.engine.report(alert_id)
        assert [d.state for d in report.deliveries] == [DeliveryState.DELIVERED], alert_id

