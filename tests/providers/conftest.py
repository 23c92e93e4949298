"""Fixtures every adapter test shares: a manual clock and an HTTP client to hand adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from alertline.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    """The time adapters and emulators see; ``sleep`` advances it at once."""
    return ManualClock()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A shared HTTP client, as the host would pass in ``ProviderContext.http``."""
    async with httpx.AsyncClient() as client:
        yield client
