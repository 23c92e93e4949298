"""An engine on a manual clock and a real SQLite file, plus small test-only providers."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from alertline.clock import ManualClock
from alertline.config.sections import Config, validate_config
from alertline.engine.core import Accepted, Engine
from alertline.engine.scheduler import ManualScheduler
from alertline.intake.request import parse_request
from alertline.model import Channel, DeliveryState, Report
from alertline.providers.base import (
    Batch,
    Capabilities,
    Provider,
    ProviderContext,
    ProviderInfo,
    StatusMode,
    StatusUpdate,
    Submission,
    SubmittedItem,
)
from alertline.providers.simulator import SimulatorProvider
from alertline.store.sqlite import SqliteStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SIM_OPTIONS: dict[str, Any] = {"type": "simulator", "sms_delay": 1.0, "voice_delay": 3.0,
                               "poll_interval": 0.5, "deadline": 30.0}


def make_config(**sections: Any) -> Config:
    """A validated config; the simulator ``sim`` unless ``providers`` says otherwise."""
    data: dict[str, Any] = {"providers": {"sim": dict(SIM_OPTIONS)}}
    data.update(sections)
    return validate_config(data, {})


class ScriptedProvider(Provider):
    """A provider that records every batch, can hold submissions at a gate, or fail them."""

    type = "scripted"
    description = "test double"
    default_capabilities = Capabilities(channels=frozenset({Channel.SMS, Channel.VOICE}),
                                        max_recipients=1000, poll_interval=1.0)
    _refs: ClassVar[itertools.count[int]] = itertools.count(1)

    def __init__(self, name: str, clock: ManualClock, *, error: BaseException | None = None,
                 gated: bool = False, max_recipients: int = 1000, idempotent: bool = False,
                 status: StatusMode = StatusMode.POLL) -> None:
        super().__init__(name, {}, ProviderContext(clock=clock))
        self.capabilities = Capabilities(
            channels=self.default_capabilities.channels, max_recipients=max_recipients,
            poll_interval=1.0, idempotent_submit=idempotent, status=status)
        self.error = error
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.entered = asyncio.Event()
        self.batches: list[Batch] = []
        self.blocked: list[asyncio.Task[Any]] = []

    @property
    def texts(self) -> dict[str, str]:
        """Submitted text by number."""
        return {item.number: item.text for batch in self.batches for item in batch.items}

    async def submit(self, batch: Batch) -> Submission:
        """Record the batch, wait at the gate, then fail or accept every item."""
        self.batches.append(batch)
        self.entered.set()
        if not self.gate.is_set():
            task = asyncio.current_task()
            assert task is not None
            self.blocked.append(task)
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        ref = f"{self.name}-{next(self._refs)}"
        items = tuple(SubmittedItem(item.delivery_id, item.number, f"{ref}-{index}",
                                    provider_status="QUEUED")
                      for index, item in enumerate(batch.items))
        return Submission(provider_ref=ref, items=items, submitted_at=self.context.clock.now())

    async def poll(self, submission: Submission) -> list[StatusUpdate]:
        """Everything is delivered at the first poll."""
        return [StatusUpdate(DeliveryState.DELIVERED, delivery_id=item.delivery_id,
                             provider_status="DONE") for item in submission.items]

    async def check(self) -> ProviderInfo:
        """Always fine."""
        return ProviderInfo(provider=self.name)


class EngineHarness:
    """Builds engines on one store file and one manual clock, collects their reports."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.clock = ManualClock(T0)
        self.scheduler = ManualScheduler(self.clock)
        self.engines: list[Engine] = []
        self.reports: list[Report] = []

    def simulator(self, name: str = "sim", **options: Any) -> SimulatorProvider:
        """A simulator on the manual clock."""
        merged = SimulatorProvider.validate_options(
            {k: v for k, v in {**SIM_OPTIONS, **options}.items() if k != "type"})
        return SimulatorProvider(name, merged, ProviderContext(clock=self.clock))

    async def start(self, config: Config | None = None,
                    providers: dict[str, Provider] | None = None, **kwargs: Any) -> Engine:
        """A started engine (a fresh scheduler, as after a restart)."""
        self.scheduler = ManualScheduler(self.clock)
        engine = Engine(config or make_config(), SqliteStore(self.path), clock=self.clock,
                        scheduler=self.scheduler, providers=providers, **kwargs)
        engine.subscribe(self.reports.append)
        self.engines.append(engine)
        await engine.start()
        return engine

    async def send(self, engine: Engine, *, keys: tuple[str, ...] = (),
                   **fields: Any) -> Accepted:
        """Accept a request and wait until its deliveries have gone to the provider."""
        accepted = await engine.accept(parse_request({"message": "Water leak", **fields}),
                                       keys=keys)
        await engine.drain()
        return accepted

    async def advance(self, engine: Engine, seconds: float) -> None:
        """Let ``seconds`` pass: polls, held sends and deadlines run; submissions finish."""
        await engine.drain()
        target = self.clock.now().timestamp() + seconds
        while True:
            due = self.scheduler.next_due()
            if due is None or due.timestamp() > target:
                break
            await self.scheduler.advance(due.timestamp() - self.clock.now().timestamp())
            await engine.drain()
        await self.scheduler.advance(target - self.clock.now().timestamp())

    def states(self, alert_id: str) -> list[str]:
        """The alert-level states of the reports emitted for ``alert_id``, in order."""
        return [r.state.value for r in self.reports if r.alert.id == alert_id]

    async def close(self) -> None:
        """Stop every engine still running."""
        for engine in self.engines:
            await engine.stop(drain_timeout=1.0)
