"""The ``alertline`` command: run, send, status, check-config, providers, oncall (and tools)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from alertline import __version__
from alertline.adapters import adapter_options
from alertline.cli.status import print_store_status, store_status
from alertline.cli.web import add_web_parser, hash_password_command
from alertline.config.sections import Config, load_config
from alertline.errors import AlertlineError, ConfigError, NotFoundError, ValidationError
from alertline.factory import create_engine
from alertline.intake.request import parse_request
from alertline.logs import configure_logging
from alertline.model import Channel, Report
from alertline.oncall.schema import calendar_layers
from alertline.providers.base import ProviderContext
from alertline.providers.registry import adapter_class, adapter_types
from alertline.redact import MASK, Redactor

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="alertline", description=__doc__)
    parser.add_argument("--version", action="version", version=f"alertline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the MQTT daemon")
    _common(run)
    run.add_argument("--log-json", action="store_true", help="log one JSON object per line")

    send = commands.add_parser("send", help="send an alert and follow it until final")
    _common(send)
    send.add_argument("--to", action="append", required=True, metavar="NUMBER",
                      help="a number (E.164), contact or group; repeatable")
    send.add_argument("--provider", help="provider instance name from the config")
    send.add_argument("--channel", action="append", choices=[c.value for c in Channel],
                      help="sms or voice; repeatable (default from the config: sms)")
    send.add_argument("--id", dest="alert_id", help="alert id (idempotency key)")
    send.add_argument("--title", help="title (SMS prefix)")
    send.add_argument("--route", help="named route from the config")
    send.add_argument("--priority", choices=["normal", "high"])
    send.add_argument("--no-wait", action="store_true", help="return once accepted")
    send.add_argument("--json", action="store_true", help="print the final report as JSON")
    send.add_argument("--timeout", type=float, default=None,
                      help="give up waiting after this many seconds (exit 1)")
    send.add_argument("message", help="the message text")

    status = commands.add_parser(
        "status", help="show an alert's report from the store (without an id: the store and "
                       "the cluster sharing it)")
    _common(status)
    status.add_argument("alert_id", nargs="?")
    status.add_argument("--json", action="store_true")

    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", nargs="?", default=None)
    check.add_argument("--config", dest="file_option", help=argparse.SUPPRESS)

    providers = commands.add_parser("providers", help="list adapter types and their options")
    providers.add_argument("--json", action="store_true")

    _optional_commands(commands)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML configuration file (default: embedded)")
    parser.add_argument("--log-level", default=None,
                        choices=["debug", "info", "warning", "error"], help="log verbosity")


def _optional_commands(commands: Any) -> None:
    """Sub-commands that live in their own modules (MQTT tools, provider resources)."""
    try:
        from alertline.cli.mqtt import add_mqtt_parsers  # noqa: PLC0415 - optional module
    except ImportError:
        pass
    else:
        add_mqtt_parsers(commands)
    add_web_parser(commands)
    try:
        from alertline.providers.exolve.cli import add_exolve_parser  # noqa: PLC0415 - optional module
    except ImportError:
        pass
    else:
        _common(add_exolve_parser(commands))
    from alertline.oncall.cli import add_oncall_parser  # noqa: PLC0415 - beside the optional commands

    _common(add_oncall_parser(commands))


def _out(text: str) -> None:
    """A line for the user on standard output."""
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    """A line of progress or an error on standard error, at once."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``alertline`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as err:
        _print_config_problems(err)
        return EXIT_BAD_INPUT
    except ValidationError as err:
        _err(f"error: {err}")
        return EXIT_BAD_INPUT
    except NotFoundError as err:
        _err(f"error: {err}")
        return EXIT_BAD_INPUT
    except AlertlineError as err:
        _err(f"error: {err}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `alertline providers | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check-config":
        return _check_config(args.file or args.file_option)
    if args.command == "providers":
        return _providers(args.json)
    if args.command == "hash-password":
        return hash_password_command()
    config = load_config(args.config)
    _setup_logging(args.log_level or config.raw["logging"]["level"],
                   getattr(args, "log_json", False) or config.raw["logging"]["json"], config)
    if args.command == "run":
        from alertline.daemon import run_daemon  # noqa: PLC0415 - only `run` needs the daemon's imports

        return run_daemon(config, config_path=args.config)
    if args.command == "send":
        return asyncio.run(_send(config, args))
    if args.command == "status":
        return asyncio.run(_status(config, args))
    if args.command == "exolve":
        return asyncio.run(_exolve(config, args))
    handler = getattr(args, "handler", None)
    if handler is not None:
        result: int = handler(config, args)
        return result
    raise AlertlineError(f"unknown command {args.command}")


def _setup_logging(level: str, as_json: bool, config: Config) -> None:
    configure_logging(level, as_json=as_json, secrets=config.secrets)


def _check_config(path: str | None) -> int:
    if path is None:
        _err("usage: alertline check-config FILE")
        return EXIT_BAD_INPUT
    config = load_config(path)
    _out(f"{path}: OK — {len(config.providers)} provider(s), {len(config.contacts)} contact(s), "
         f"{len(config.groups)} group(s), {len(config.routes)} route(s)")
    return EXIT_OK


def _print_config_problems(err: ConfigError) -> None:
    _err(f"configuration has {len(err.problems)} problem(s):")
    for path, reason in err.problems:
        _err(f"  {path or '(file)'}: {reason}")


def _providers(as_json: bool) -> int:
    listing = [_describe_adapter(name) for name in adapter_types()]
    if as_json:
        _out(json.dumps(listing, indent=2))
        return EXIT_OK
    for entry in listing:
        caps = entry["capabilities"]
        _out(f"{entry['type']}: {entry['description']}")
        _out(f"  channels: {', '.join(caps['channels'])}; up to {caps['max_recipients']} "
             f"recipient(s) per request; status by {caps['status']}")
        for option in entry["options"]:
            flags = "required" if option["required"] else f"default {option['default']!r}"
            secret = ", secret" if option["secret"] else ""
            _out(f"  - {option['name']} ({flags}{secret}): {option['description']}")
    return EXIT_OK


def _describe_adapter(name: str) -> dict[str, Any]:
    cls = adapter_class(name)
    options = [{"name": option.name, "required": option.required,
                "default": MASK if option.secret and option.default else option.default,
                "secret": option.secret, "description": option.description}
               for option in adapter_options(cls)]
    return {"type": name, "description": cls.description,
            "capabilities": cls.default_capabilities.to_json(), "options": options}


async def _send(config: Config, args: argparse.Namespace) -> int:
    payload: dict[str, Any] = {"message": args.message, "to": args.to}
    for key, value in (("id", args.alert_id), ("channel", args.channel),
                       ("provider", args.provider), ("title", args.title),
                       ("route", args.route), ("priority", args.priority)):
        if value:
            payload[key] = value
    request = parse_request(payload)
    for layer in calendar_layers(config.schedules):  # schedule:<name> may need a calendar
        await layer.refresh_once()
    engine = create_engine(config)
    printer = ProgressPrinter(quiet=args.json)
    engine.subscribe(printer)
    await engine.start()
    try:
        accepted = await engine.accept(request, source="cli")
        if accepted.duplicate:
            _err(f"alert {accepted.alert_id} was already accepted: following it")
        if args.no_wait:
            _out(json.dumps(accepted.to_json()))
            return EXIT_OK
        try:
            report = await engine.wait_final(accepted.alert_id, args.timeout)
        except TimeoutError:
            _err(f"gave up waiting after {args.timeout}s; the alert goes on when alertline runs "
                 "again")
            return EXIT_FAILED
    finally:
        await engine.stop()
    if args.json:
        _out(json.dumps(report.to_json(), indent=2))
    else:
        print_summary(report)
    return EXIT_OK if report.state.value == "delivered" else EXIT_FAILED


async def _exolve(config: Config, args: argparse.Namespace) -> int:
    # the Exolve tools are only imported for this command
    from alertline.providers.exolve.cli import run_exolve  # noqa: PLC0415
    from alertline.providers.exolve.voice import ExolveVoiceProvider  # noqa: PLC0415

    names = [n for n, p in config.providers.items() if p.type == "exolve_voice"]
    if args.provider:
        names = [n for n in names if n == args.provider]
    if len(names) != 1:
        _err("error: name the exolve_voice provider of the config with --provider"
             if names else "error: the config has no exolve_voice provider")
        return EXIT_BAD_INPUT
    chosen = config.providers[names[0]]
    provider = ExolveVoiceProvider(chosen.name, chosen.options,
                                   ProviderContext(redactor=Redactor(config.secrets)))
    try:
        return await run_exolve(args, provider)
    finally:
        await provider.aclose()


async def _status(config: Config, args: argparse.Namespace) -> int:
    if args.alert_id is None:
        print_store_status(await store_status(config), as_json=args.json)
        return EXIT_OK
    engine = create_engine(config, exclusive=False)  # only reads: a running daemon may hold it
    await engine.store.open()
    try:
        report = await engine.report(args.alert_id)
    finally:
        await engine.store.close()
    if args.json:
        _out(json.dumps(report.to_json(), indent=2))
    else:
        print_summary(report)
    return EXIT_OK


class ProgressPrinter:
    """Prints each delivery's state changes as reports arrive."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._seen: dict[str, tuple[str, str | None]] = {}

    def __call__(self, report: Report) -> None:
        """Print what changed since the last report."""
        for delivery in report.deliveries:
            now = (delivery.state.value, delivery.provider_status)
            if self._seen.get(delivery.id) == now:
                continue
            self._seen[delivery.id] = now
            if self.quiet:
                continue
            extra = f" ({delivery.provider_status})" if delivery.provider_status else ""
            reason = f" — {delivery.reason}" if delivery.reason else ""
            _err(f"{delivery.recipient.number:>16}  {delivery.channel.value:<5} "
                 f"{delivery.state.value}{extra}{reason}")


def print_summary(report: Report) -> None:
    """A short human-readable report."""
    counts = ", ".join(f"{n} {state}" for state, n in sorted(report.counts().items()))
    _out(f"alert {report.alert.id}: {report.state.value} ({counts})")
    for delivery in report.deliveries:
        reason = f": {delivery.reason}" if delivery.reason else ""
        _out(f"  {delivery.recipient.number} {delivery.channel.value} via {delivery.provider}: "
             f"{delivery.state.value}{reason}")


if __name__ == "__main__":
    logging.basicConfig()
    sys.exit(main())
