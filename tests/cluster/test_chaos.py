"""Chaos on real processes: daemons killed with SIGKILL, a database restarted, mid-stream.

Each test runs PostgreSQL, Mosquitto, the Retarus SMS emulator (:mod:`bench.emulator_proc`, which
logs every delivery id it was handed) and ``alertline run`` daemons as separate processes
(:mod:`tests.cluster.processes`). What is asserted is what a user would see: every alert final
in the store with a final report, each delivery submitted, a resent one marked as a possible
duplicate, escalation steps arriving at the provider on time (or not at all after an ack).
The random moments come from a seed printed by the test (``CHAOS_SEED`` repeats a run).
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.processes import (
    LEASE,
    Cluster,
    Member,
    Reports,
    Stream,
    publish,
    running_cluster,
    wait_until,
)
from tests.postgres import Postgres, running_postgres, shared_server

ALERTS = 5000
RATE = 250.0  # alerts/s published: the stream lasts 20 s, long enough for three kills
KILLS = 3


def _seed() -> int:
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(2**32)))
    print(f"CHAOS_SEED={seed}")
    return seed


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Broker, emulator and a fresh database on the run's PostgreSQL server."""
    with running_cluster(tmp_path, shared_server()) as started:
        yield started


@pytest.fixture
def own_server() -> Iterator[Postgres]:
    """A PostgreSQL server of this test's own, free to be stopped and started."""
    with running_postgres() as server:
        yield server


def _alerts(prefix: str, count: int) -> list[dict[str, Any]]:
    # numbers ending in 0: the emulator accepts them and finishes them a moment later
    return [{"id": f"{prefix}{index:05d}", "to": f"+49170123{index % 1000:03d}0",
             "message": f"chaos {index}"} for index in range(count)]


@dataclass
class Kill:
    """One SIGKILL: when (alerts published), whom, and what it left in flight."""

    published: int
    member: str
    in_flight: set[str]


def _kill_points(rng: random.Random, count: int, gap: int) -> list[int]:
    """``KILLS`` publish counts in the middle of the stream, at least ``gap`` apart."""
    while True:
        points = sorted(rng.randrange(count // 10, count * 17 // 20) for _ in range(KILLS))
        if all(b - a >= gap for a, b in itertools.pairwise(points)):
            return points


def _kill_and_restart(cluster: Cluster, victim: Member, published: int) -> Kill:
    """SIGKILL ``victim``, read what it had in flight (no survivor can have claimed its alerts
    yet: its lease runs for a while), start it again."""
    name = victim.member
    victim.kill()
    in_flight = cluster.store.in_flight(name)
    victim.start()
    victim.wait_ready()
    return Kill(published, name, in_flight)


def _assert_nothing_lost(cluster: Cluster, reports: Reports, prefix: str, ids: list[str],
                         kills: list[Kill]) -> None:
    """Every alert final in the store and in a report, each delivery submitted; duplicates no
    more than was in flight at the kills, each marked in its report."""
    store = cluster.store
    started = time.monotonic()
    def all_final() -> bool:
        cluster.revive()
        return bool(store.finals(prefix) >= len(ids))
    try:
        # about 50 alerts/s for the slowest case seen (5,000 with three take-overs)
        wait_until(all_final, 30 + len(ids) / 50, f"all {len(ids)} alerts final in the store")
    except AssertionError as error:
        missing = sorted(set(ids) - store.alert_ids(prefix))
        raise AssertionError(
            f"{error}: {store.open_work(prefix)}; {len(missing)} never stored, e.g. "
            f"{missing[:3]}, errors answered for them: "
            f"{[reports.errors.get(alert_id) for alert_id in missing[:3]]}") from None
    try:
        wait_until(lambda: reports.count(prefix) >= len(ids), 30,
                   f"a final report of all {len(ids)} alerts")
    except AssertionError as error:
        missing = [alert_id for alert_id in ids if reports.get(alert_id) is None]
        raise AssertionError(f"{error}: {len(missing)} missing, e.g. {missing[:5]}\n"
                             f"{store.describe(missing[0])}\n{store.outbox()}") from None
    assert store.alert_ids(prefix) == set(ids)
    deliveries = store.rows("SELECT id, alert_id, state FROM deliveries WHERE alert_id LIKE %s",
                            prefix + "%")
    submitted = cluster.emulator.submission_counts()
    assert {alert_id for _id, alert_id, _state in deliveries} == set(ids)
    assert [d for d in deliveries if submitted[d[0]] == 0] == [], "never submitted"
    assert [d for d in deliveries if d[2] != "delivered"] == [], "not delivered"
    duplicates = {d[0]: d[1] for d in deliveries if submitted[d[0]] > 1}
    in_flight = set().union(*(kill.in_flight for kill in kills))
    print(f"kills (published, member, in flight): "
          f"{[(k.published, k.member, len(k.in_flight)) for k in kills]}; "
          f"duplicates: {len(duplicates)}; all final {time.monotonic() - started:.1f}s after "
          f"the last publish; evicted (exit 75) and started again: {cluster.evicted}")
    stray = sorted(set(duplicates) - in_flight)
    assert not stray, (
        f"{len(stray)} deliveries submitted twice that were not in flight at a kill, e.g. "
        f"{stray[:3]}; live members that lost their lease meanwhile (exit 75): "
        f"{cluster.evicted}")
    for delivery_id, alert_id in duplicates.items():
        report = reports.get(alert_id)
        assert report is not None
        [delivery] = [d for d in report["deliveries"] if d["id"] == delivery_id]
        assert delivery.get("details", {}).get("possible_duplicate") is True, delivery


@pytest.mark.parametrize("settle", [
    # a survivor asks Retarus which deliveries caught in flight it has (their customerRef)
    {},
    # it cannot ask, so it resends them, each marked as a possible duplicate
    {"recovery_lookup_limit": 0}], ids=["asked", "resent"])
def test_two_daemons_killed_at_three_random_moments_lose_no_alert(
        cluster: Cluster, settle: dict[str, Any]) -> None:
    rng = random.Random(_seed())
    for name in "ab":
        cluster.add(name, settle)
    cluster.start()
    reports = Reports(cluster.broker)
    stream = Stream(cluster.broker, _alerts("kill-", ALERTS), RATE).start()
    kills: list[Kill] = []
    try:
        for point in _kill_points(rng, ALERTS, gap=int(RATE * 3)):
            wait_until(lambda point=point: stream.published >= point, 60,  # type: ignore[misc]
                       f"{point} alerts published")
            victim = rng.choice(cluster.members)
            kills.append(_kill_and_restart(cluster, victim, stream.published))
        stream.wait()
        _assert_nothing_lost(cluster, reports, "kill-", stream.ids(0), kills)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{cluster.logs()}") from None
    finally:
        stream.close()
        reports.close()


def test_two_daemons_publish_the_report_of_every_alert(cluster: Cluster) -> None:
    """No chaos: both members write reports to the shared outbox, one publishes them all."""
    for name in "ab":
        cluster.add(name)
    cluster.start()
    reports = Reports(cluster.broker)
    stream = Stream(cluster.broker, _alerts("calm-", 600), RATE).start()
    try:
        stream.wait()
        _assert_nothing_lost(cluster, reports, "calm-", stream.ids(0), [])
    except AssertionError as error:
        raise AssertionError(f"{error}\n{cluster.logs()}") from None
    finally:
        stream.close()
        reports.close()


FREEZE_ALERTS = 900


def _frozen_mid_stream(cluster: Cluster, prefix: str) -> tuple[Member, Reports, Stream]:
    """Two members, a stream of alerts, and the first member frozen (SIGSTOP: a long GC pause,
    a suspended VM) once a third of them were published."""
    for name in "ab":
        cluster.add(name)
    cluster.start()
    reports = Reports(cluster.broker)
    stream = Stream(cluster.broker, _alerts(prefix, FREEZE_ALERTS), RATE).start()
    wait_until(lambda: stream.published >= FREEZE_ALERTS // 3, 30, "a third published")
    cluster.members[0].pause()
    return cluster.members[0], reports, stream


def test_a_frozen_daemon_is_taken_over_within_its_lease(cluster: Cluster) -> None:
    """Frozen for twice its lease, a member's alerts go to the survivor meanwhile; when it
    thaws, nothing is lost."""
    frozen, reports, stream = _frozen_mid_stream(cluster, "frozen-")
    try:
        name = frozen.member
        thaw = time.monotonic() + 2 * LEASE
        while time.monotonic() < thaw and cluster.store.member_listed(name):
            time.sleep(0.1)  # watching for the take-over during the freeze
        taken_while_frozen = not cluster.store.member_listed(name)
        holders = cluster.store.idle_in_transaction()
        in_flight = cluster.store.in_flight(name)
        frozen.resume()
        stream.wait()
        _assert_nothing_lost(cluster, reports, "frozen-", stream.ids(0),
                             [Kill(stream.published, name, in_flight)])
        assert taken_while_frozen, (
            f"{name}'s alerts were not taken over during {2 * LEASE:g}s frozen (lease "
            f"{LEASE:g}s); transactions left open: {holders}")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{cluster.logs()}") from None
    finally:
        stream.close()
        reports.close()


def test_a_daemon_that_lost_its_lease_acknowledges_nothing_it_did_not_commit(
        cluster: Cluster) -> None:
    """A frozen member whose database sessions are cut (a partition, the server's
    idle_in_transaction_session_timeout) is taken over; when it thaws, the messages it had
    received are not acknowledged without a commit: it exits with 75, is started again as
    systemd would, and nothing is lost."""
    frozen, reports, stream = _frozen_mid_stream(cluster, "fenced-")
    try:
        name = frozen.member

        def removed() -> bool:
            cluster.store.cut_stalled_sessions()  # whatever it holds open goes
            return not cluster.store.member_listed(name)
        wait_until(removed, LEASE + 10, f"{name} removed by the survivor")
        in_flight = cluster.store.in_flight(name)
        frozen.resume()
        stream.wait()
        _assert_nothing_lost(cluster, reports, "fenced-", stream.ids(0),
                             [Kill(stream.published, name, in_flight)])
        assert name in cluster.evicted
    except AssertionError as error:
        raise AssertionError(f"{error}\n{cluster.logs()}") from None
    finally:
        stream.close()
        reports.close()


STEP_WAIT = 2.0  # seconds before an unacknowledged escalation moves to its second step
SLACK = 1.5  # seconds for a loaded 2-core machine: the survivor's claim round, a commit
ESCALATION: dict[str, Any] = {
    # numbers ending in 9: the emulator never finishes them, like a call nobody answers
    "contacts": {"first": {"phone": "+491701230009"}, "second": {"phone": "+491701231119"}},
    "escalations": {"page": {"steps": [
        {"to": ["first"], "channel": "sms", "wait": f"{STEP_WAIT:g}s"},
        {"to": ["second"], "channel": "sms", "wait": "10m"}]}},
}


def _steps(cluster: Cluster, alert_id: str) -> list[float]:
    """When each delivery of ``alert_id`` first reached the provider, in order."""
    return sorted(times[0] for ref, times in cluster.submitted().items()
                  if ref.startswith(f"{alert_id}-"))


def _escalate(cluster: Cluster, alert_id: str) -> tuple[float, Member]:
    """Start an escalation; when its first step reached the provider, and its owner."""
    publish(cluster.broker, "alertline/send",
            {"id": alert_id, "message": "leak in the basement", "escalation": "page"})
    [first] = wait_until(lambda: _steps(cluster, alert_id), 15, "the first step submitted")
    owner = wait_until(lambda: cluster.store.owner(alert_id), 5, "an owner")
    return first, cluster.by_member_name(owner)


def test_an_escalation_started_on_a_killed_daemon_continues_on_the_survivor(
        cluster: Cluster) -> None:
    for name in "ab":
        cluster.add(name, **ESCALATION)
    cluster.start()
    try:
        first, victim = _escalate(cluster, "esc-1")
        victim.kill()
        killed_at = time.time()
        [survivor] = [m for m in cluster.members if m is not victim]
        steps = wait_until(lambda: _steps(cluster, "esc-1")[1:] and _steps(cluster, "esc-1"),
                           STEP_WAIT + LEASE + 10, "the second step submitted")
        print(f"step 1 {steps[1] - first:.2f}s after step 0, {steps[1] - killed_at:.2f}s "
              f"after the kill (wait {STEP_WAIT}s, lease {LEASE}s)")
        assert len(steps) == 2
        assert steps[1] - first >= STEP_WAIT - 0.1
        assert steps[1] - first <= STEP_WAIT + LEASE + SLACK
        assert cluster.store.owner("esc-1") == survivor.member
    except AssertionError as error:
        raise AssertionError(f"{error}\n{cluster.store.describe('esc-1')}\n"
                             f"{cluster.logs()}") from None


def test_an_ack_sent_while_the_owner_is_down_stops_its_escalation(cluster: Cluster) -> None:
    for name in "ab":
        cluster.add(name, **ESCALATION)
    cluster.start()
    try:
        first, victim = _escalate(cluster, "ack-1")
        victim.kill()
        publish(cluster.broker, "alertline/ack/ack-1", {"by": "chaos"})
        wait_until(lambda: cluster.store.alert("ack-1").get("state") == "acknowledged",
                   LEASE + 10, "the alert acknowledged")
        # the second step would have been due long before this moment; it must never come
        deadline = first + STEP_WAIT + LEASE + SLACK + 1.0
        while time.time() < deadline:
            assert len(_steps(cluster, "ack-1")) == 1, "a step after the ack"
            time.sleep(0.1)  # watching the provider for a step that must not come
        assert len(_steps(cluster, "ack-1")) == 1, "a step after the ack"
    except AssertionError as error:
        raise AssertionError(f"{error}\n{cluster.store.describe('ack-1')}\n"
                             f"{cluster.logs()}") from None


OUTAGE_ALERTS = 900
OUTAGE_RATE = 150.0


def test_a_database_restart_mid_stream_loses_nothing_and_acks_nothing_uncommitted(
        tmp_path: Path, own_server: Postgres) -> None:
    with running_cluster(tmp_path, own_server) as cluster:
        for name in "ab":
            cluster.add(name)
        cluster.start()
        reports = Reports(cluster.broker)
        stream = Stream(cluster.broker, _alerts("pg-", OUTAGE_ALERTS), OUTAGE_RATE).start()

        def failing() -> bool:
            return all((m.health() or {}).get("status") == "failing" for m in cluster.members)

        def published(count: int) -> bool:
            return stream.published >= count
        try:
            # 1: the server restarts under running daemons, which hold their work until it is back
            wait_until(lambda: published(200), 30, "200 published")
            own_server.stop()
            wait_until(failing, 15, "the daemons see the outage")
            mark = stream.published
            wait_until(lambda: published(mark + 100), 15, "100 published during the outage")
            own_server.start()
            # 2: the daemons die during an outage: what the broker handed them since was not
            # committed, so it must not have been acknowledged either
            wait_until(lambda: published(550), 30, "550 published")
            own_server.stop()
            wait_until(failing, 15, "the daemons see the second outage")
            mark = stream.published
            wait_until(lambda: published(mark + 100), 15, "100 published during the outage")
            cluster.revive()  # a member may have lost its lease in the first outage
            for member in cluster.members:
                member.kill()
            own_server.start()
            uncommitted = set(stream.ids(mark, stream.published))
            in_flight = cluster.store.in_flight()
            assert not uncommitted & cluster.store.alert_ids("pg-")
            cluster.start()
            stream.wait()
            _assert_nothing_lost(cluster, reports, "pg-", stream.ids(0),
                                 [Kill(mark, "all", in_flight)])
        except AssertionError as error:
            raise AssertionError(f"{error}\n{cluster.logs()}") from None
        finally:
            stream.close()
            reports.close()
