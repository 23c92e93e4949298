"""``alertline oncall [NAME] [--at TIME] [--json]``: who is on call, and the next handoffs."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alertline.errors import NotFoundError, ValidationError
from alertline.oncall.schedules import OnCallView, Schedule
from alertline.oncall.schema import calendar_layers

if TYPE_CHECKING:
    from alertline.config.sections import Config


def add_oncall_parser(commands: Any) -> argparse.ArgumentParser:
    """Register the ``oncall`` sub-command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "oncall", help="show who is on call and the next handoffs")
    parser.add_argument("name", nargs="?", help="a schedule (default: every schedule)")
    parser.add_argument("--at", metavar="TIME",
                        help="a time such as 2026-12-25T12:00 (the schedule's time zone unless "
                             "it has an offset; default: now)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=oncall_command)
    return parser


def parse_at(text: str | None, schedule: Schedule) -> datetime:
    """``--at`` as UTC: a time without an offset is wall-clock time in the schedule's zone."""
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError("--at", f"expected a time such as 2026-12-25T12:00, not {text!r}") \
            from None
    return (when if when.tzinfo is not None else when.replace(tzinfo=schedule.zone)).astimezone(UTC)


def describe(view: OnCallView) -> list[str]:
    """Lines for a person: who, until when, and the next handoffs."""
    def local(when: datetime) -> str:
        return when.astimezone(view.zone).strftime("%a %Y-%m-%d %H:%M %Z")

    who = ", ".join(view.on_call) or "nobody"
    until = f" until {local(view.until)}" if view.until else ""
    lines = [f"{view.schedule}: {who}{until}"]
    lines += [f"  then {', '.join(names) or 'nobody'} from {local(at)}" for at, names in view.next]
    return lines


def oncall_command(config: Config, args: argparse.Namespace) -> int:
    """Print the on-call view of one schedule (or every schedule)."""
    schedules = config.schedules
    if args.name is not None:
        schedules.get(args.name)  # NotFoundError names it
        names = [args.name]
    else:
        names = sorted(schedules.by_name)
        if not names:
            raise NotFoundError("the configuration has no schedules")
    layers = [layer for layer in calendar_layers(schedules) if layer.schedule in names]

    async def read_calendars() -> None:
        for layer in layers:
            if not await layer.refresh_once():
                sys.stderr.write(f"warning: schedule {layer.schedule}: the calendar could not "
                                 "be read; its events are missing\n")

    if layers:
        asyncio.run(read_calendars())
    views = [schedules.get(n).view(parse_at(args.at, schedules.get(n))) for n in names]
    if args.json:
        payload: Any = views[0].to_json() if args.name else [v.to_json() for v in views]
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write("".join(line + "\n" for view in views for line in describe(view)))
    return 0
