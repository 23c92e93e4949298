"""The Retarus REST emulator in its own process, logging each job's arrival to a file.

One line per job: ``<arrival time> <recipients> <publish stamps...>`` (stamps are the ``t=`` values
found in the job's texts, used for the latency figure).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from typing import Any

from tests.emulators.retarus_sms import RetarusSmsEmulator

_STAMP = re.compile(r"t=(\d+\.\d+)")


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--arrivals", required=True)
    args = parser.parse_args()
    log = open(args.arrivals, "a", buffering=1)  # noqa: SIM115 - open for the process lifetime
    emulator = RetarusSmsEmulator(user=args.user, password=args.password, port=args.port,
                                  step_seconds=0.2, record=False)
    original = emulator._create_job

    def stamped(request: Any, body: Any) -> Any:
        arrived = time.time()
        messages = body.get("messages", []) if isinstance(body, dict) else []
        recipients = sum(len(m.get("recipients", [])) for m in messages)
        stamps = [s for m in messages for s in _STAMP.findall(str(m.get("text", "")))]
        log.write(f"{arrived:.6f} {recipients} {' '.join(stamps)}\n")
        return original(request, body)

    emulator._create_job = stamped  # type: ignore[method-assign,assignment]

    async def serve() -> None:
        async with emulator:
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
