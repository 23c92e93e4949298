"""``alertline exolve voice-messages list|create|show|delete``: manage Exolve voice messages."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from alertline.errors import ProviderError, ValidationError
from alertline.providers.exolve.voice import ExolveVoiceProvider, VoiceMessage, VoiceMessageSummary

_LOGGER = logging.getLogger(__name__)


def add_exolve_parser(
        subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``exolve voice-messages list|create|show|delete`` to the CLI; returns its parser."""
    exolve = subparsers.add_parser(
        "exolve", help="MTS Exolve: manage voice-message resources",
        description="Manage the voice-message resources (audio + optional redirect digit) that "
                    "an exolve_voice provider plays with its service_id.")
    exolve.add_argument("--provider", metavar="NAME",
                        help="the exolve_voice provider of the config (default: the only one)")
    commands = exolve.add_subparsers(dest="exolve_command", metavar="COMMAND", required=True)
    messages = commands.add_parser("voice-messages", help="voice-message/v1 resources")
    actions = messages.add_subparsers(dest="exolve_action", metavar="ACTION", required=True)
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON instead of text")

    actions.add_parser("list", parents=[output], help="list every voice message (GetList)")
    create = actions.add_parser("create", parents=[output], help="create a voice message (Create)")
    create.add_argument("--name", required=True, help="name of the voice message")
    create.add_argument("--media-id", type=int, required=True,
                        help="id of an audio file uploaded to Exolve (Media API)")
    create.add_argument("--digit", type=int, choices=range(10), metavar="0-9",
                        help="key the callee presses to be redirected (default 0)")
    create.add_argument("--redirect-number", metavar="NUMBER",
                        help="where the call is redirected: +79295800000 or 79295800000")
    show = actions.add_parser("show", parents=[output], help="show one voice message (GetInfo)")
    show.add_argument("id", help="voice-message id")
    delete = actions.add_parser("delete", parents=[output], help="delete a voice message (Delete)")
    delete.add_argument("id", help="voice-message id")
    return exolve


async def run_exolve(args: argparse.Namespace, provider: ExolveVoiceProvider) -> int:
    """Run the parsed ``exolve`` command against ``provider``; the process exit code."""
    as_json = bool(getattr(args, "json", False))
    action = getattr(args, "exolve_action", None)
    try:
        if action == "list":
            entries = await provider.list_voice_messages()
            _emit(as_json, [_summary_json(e) for e in entries], _list_text(entries))
        elif action == "create":
            created = await provider.create_voice_message(
                args.name, args.media_id, digit=args.digit, redirect_number=args.redirect_number)
            _emit(as_json, created.to_json(), f"created voice message {created.id}\n"
                  f"use it with service_id: {created.id}\n")
        elif action == "show":
            message = await provider.get_voice_message(args.id)
            _emit(as_json, message.to_json(), _show_text(message))
        elif action == "delete":
            await provider.delete_voice_message(args.id)
            _emit(as_json, {"id": args.id, "deleted": True}, f"deleted voice message {args.id}\n")
        else:
            sys.stderr.write("error: choose one of list, create, show, delete\n")
            return 2
    except ValidationError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    except ProviderError as err:
        _LOGGER.debug("exolve %s failed: %s", action, provider.context.redactor.text(str(err)))
        sys.stderr.write(f"error: {provider.context.redactor.text(str(err))}\n")
        return 1
    return 0


def _emit(as_json: bool, data: Any, text: str) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n" if as_json else text)


def _summary_json(entry: VoiceMessageSummary) -> dict[str, Any]:
    return {"id": entry.id, "name": entry.name,
            "created_at": entry.created_at.isoformat() if entry.created_at else None}


def _list_text(entries: list[VoiceMessageSummary]) -> str:
    if not entries:
        return "no voice messages\n"
    rows = [(e.id, e.name or "", e.created_at.isoformat() if e.created_at else "")
            for e in entries]
    width = [max(len(r[i]) for r in [("ID", "NAME", "CREATED"), *rows]) for i in range(2)]
    lines = [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}".rstrip()
             for a, b, c in [("ID", "NAME", "CREATED"), *rows]]
    return "\n".join(lines) + "\n"


def _show_text(message: VoiceMessage) -> str:
    fields = message.to_json()
    if message.redirect_number is None:
        fields["redirect"] = "none"
        del fields["digit"], fields["redirect_number"]
    return "".join(f"{key}: {'' if value is None else value}\n" for key, value in fields.items())
