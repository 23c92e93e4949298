"""A real ``hass`` process: its configuration, its start and stop, and its log, read as it comes.

The log is read line by line from the process' output, so a test awaits the line it needs
("Home Assistant initialized") instead of polling. Everything is also written to ``hass.log``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

# Home Assistant 2026.2 refuses to start on Python < 3.13.2 (``validate_python`` in
# ``homeassistant/__main__.py`` compares with ``homeassistant.const.REQUIRED_PYTHON_VER``). The
# launcher lowers that one constant to the running version before ``__main__`` reads it; nothing
# else is changed.
LAUNCHER = """\
import sys

import homeassistant.const

homeassistant.const.REQUIRED_PYTHON_VER = tuple(sys.version_info[:3])

from homeassistant.__main__ import main

sys.exit(main())
"""

CONFIGURATION = """\
homeassistant:
  name: alertline e2e
  time_zone: UTC
  country: DE
  unit_system: metric
  currency: EUR
  internal_url: "http://127.0.0.1:{port}"
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
diagnostics:
websocket_api:
logger:
  default: info
"""

RECORD_START = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ (?P<level>[A-Z]+) \((?P<thread>[^)]*)\) "
    r"\[(?P<logger>[^\]]+)\] (?P<message>.*)$")


@dataclass
class LogRecord:
    """One record of Home Assistant's log, with its continuation lines (tracebacks)."""

    level: str
    logger: str
    text: str


@dataclass
class HassLog:
    """Every record the process wrote, and waiters for a substring of a future line."""

    records: list[LogRecord] = field(default_factory=list)
    _waiters: list[tuple[str, asyncio.Future[str]]] = field(default_factory=list)

    def feed(self, line: str) -> None:
        """Add one output line: a new record, or a continuation of the previous one."""
        match = RECORD_START.match(line)
        if match:
            self.records.append(LogRecord(match["level"], match["logger"], line))
        elif self.records:
            self.records[-1].text += "\n" + line
        else:
            self.records.append(LogRecord("OUTPUT", "", line))
        for needle, future in self._waiters:
            if needle in line and not future.done():
                future.set_result(line)

    async def wait_for(self, needle: str, within: float) -> str:
        """The first line from now on that contains ``needle`` (TimeoutError after ``within`` s)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiter = (needle, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, within)
        finally:
            self._waiters.remove(waiter)


def write_config(config_dir: Path, port: int, integration_zip: Path) -> None:
    """A minimal configuration, and the release zip unpacked where HACS unpacks it."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=port))
    with zipfile.ZipFile(integration_zip) as archive:
        archive.extractall(config_dir / "custom_components" / "alertline")


@dataclass
class HassProcess:
    """One run of ``hass -c config_dir`` under the venv's python."""

    python: Path
    config_dir: Path
    port: int
    env: dict[str, str]
    log: HassLog
    log_file: Path
    _process: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None

    async def start(self, within: float = 180) -> None:
        """Start and return once Home Assistant says it has started."""
        launcher = self.config_dir.parent / "launch_hass.py"
        launcher.write_text(LAUNCHER)
        started = asyncio.ensure_future(self.log.wait_for("Home Assistant initialized", within))
        self._process = await asyncio.create_subprocess_exec(
            str(self.python), str(launcher), "--config", str(self.config_dir),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **self.env}, start_new_session=True)
        self._reader = asyncio.create_task(self._read_output())
        done, _ = await asyncio.wait({started, self._reader},
                                     return_when=asyncio.FIRST_COMPLETED)
        if started not in done:
            started.cancel()
            raise RuntimeError(f"hass exited before it started; see {self.log_file}")
        started.result()

    async def _read_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        with self.log_file.open("a") as out:
            while line := await self._process.stdout.readline():
                text = line.decode(errors="replace").rstrip("\n")
                out.write(text + "\n")
                out.flush()
                self.log.feed(text)

    async def stop(self, within: float = 60) -> int:
        """SIGTERM (Home Assistant's graceful stop), SIGKILL if it hangs; the exit code."""
        process = self._process
        if process is None:
            return 0
        if process.returncode is not None:
            return process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(process.wait(), within)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        finally:
            if self._reader is not None:
                await asyncio.wait_for(self._reader, 10)
        return code
