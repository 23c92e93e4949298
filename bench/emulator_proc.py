"""The Retarus REST emulator in its own process, as a hosted provider: slow answers, a rate limit.

Every request is answered ``--latency`` seconds after it arrived (a hosted API's round trip); with
``--burst N`` at most N jobs are admitted per ``--window`` seconds and the rest are refused with
429, as the Retarus document says. Each admitted job is logged as one line
``<arrival time> <recipients> <kind>:<stamp>...``, where the stamps are the ``t=`` (normal) and
``p=`` (high priority) publish times found in the job's texts; each refusal as ``429 <time>``.
With ``--refs FILE``, each admitted job also adds a line ``<arrival time> <customerRef>...`` to FILE
(alertline sends each delivery id as its recipient's customerRef), so a test can tell how often and
when each delivery was submitted.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from typing import IO, Any

from aiohttp import web

from tests.emulators.retarus_sms import RetarusSmsEmulator

_STAMP = re.compile(r"\b([tp])=(\d+\.\d+)")
_ARRIVED = "bench.arrived"


class HostedEmulator(RetarusSmsEmulator):
    """The emulator with a fixed answer latency and an arrival log."""

    def __init__(self, log: IO[str], latency: float, refs: IO[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log = log
        self.latency = latency
        self.refs = refs

    async def _serve(self, request: web.Request, route: str, handle: Any) -> web.StreamResponse:
        request[_ARRIVED] = time.time()
        if self.latency > 0:
            await asyncio.sleep(self.latency)  # the provider's own round trip, by design
        response = await super()._serve(request, route, handle)
        if response.status == 429:
            self.log.write(f"429 {request[_ARRIVED]:.6f}\n")
        return response

    def _create_job(self, request: web.Request, body: Any) -> tuple[int, Any]:
        messages = body.get("messages", []) if isinstance(body, dict) else []
        recipients = sum(len(m.get("recipients", [])) for m in messages)
        stamps = [f"{kind}:{stamp}" for m in messages
                  for kind, stamp in _STAMP.findall(str(m.get("text", "")))]
        result = super()._create_job(request, body)
        self.log.write(f"{request[_ARRIVED]:.6f} {recipients} {' '.join(stamps)}\n")
        if self.refs is not None:
            refs = [str(r.get("customerRef")) for m in messages for r in m.get("recipients", [])]
            self.refs.write(f"{request[_ARRIVED]:.6f} {' '.join(refs)}\n")
        return result


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--arrivals", required=True)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--burst", type=int, default=None)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--refs", default=None)
    args = parser.parse_args()
    log = open(args.arrivals, "a", buffering=1)  # noqa: SIM115 - open for the process lifetime
    refs = open(args.refs, "a", buffering=1) if args.refs else None  # noqa: SIM115 - likewise
    emulator = HostedEmulator(log, args.latency, refs, user=args.user, password=args.password,
                              port=args.port, step_seconds=0.2, record=False,
                              rate_limit=(args.burst, args.window) if args.burst else None)

    async def serve() -> None:
        async with emulator:
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
