"""Fixtures shared by the core (library) tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.engine_harness import EngineHarness


@pytest.fixture
async def manual_engine(tmp_path: Path) -> AsyncIterator[EngineHarness]:
    """Engines on a manual clock and scheduler over one SQLite file in ``tmp_path``."""
    harness = EngineHarness(tmp_path / "alertline.db")
    yield harness
    await harness.close()


@pytest.fixture
def no_engine_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if anything in alertline logged an error it did not expect."""
    yield
    errors = [r.getMessage() for r in caplog.get_records("call")
              if r.levelno >= logging.ERROR and r.name.startswith("alertline")]
    assert errors == []
