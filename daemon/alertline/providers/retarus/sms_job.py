"""The JobRequest a batch becomes for Retarus SMS: per-alert options, texts cut to size, and
recipients with their refs.

Pure (no I/O): split from the adapter (:mod:`.sms`), which sends the job and tracks it, so what
is sent can be read apart from how. Seed: seeds/retarus-sms-rest-v1.txt (JobRequest).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import voluptuous as vol

from alertline.errors import ValidationError
from alertline.model import Priority
from alertline.phone import NumberFormat, format_number
from alertline.providers.base import Batch
from alertline.providers.retarus import sms_wire as wire
from alertline.providers.retarus.common import check_sender, short_ref
from alertline.providers.sms_parts import OVER_MAX_PARTS, SmsEncoding, fit_text, is_gsm7

# the option both the adapter and an alert may set: (name, description)
OVER_PARTS_OPTION = ("over_max_parts", "a text needing more than max_parts parts: send "
                     "(Retarus cuts it), cut (here, ending in '...'/'…') or reject")
ALERT_OPTIONS: dict[Any, Any] = {
    **wire.job_settings_schema(defaults=False),
    vol.Optional(OVER_PARTS_OPTION[0], description=OVER_PARTS_OPTION[1]): vol.In(OVER_MAX_PARTS),
    vol.Optional("job_period", description="ISO 8601 start time (default: not_before)"):
        wire.check_timestamp,
    vol.Optional("recipients", description="per number or contact: customer_ref, "
                 "blackout_periods"): {str: wire.RECIPIENT_SCHEMA},
}
_ALERT_SCHEMA = vol.Schema(ALERT_OPTIONS)  # compiled once


def alert_options(options: dict[str, Any]) -> dict[str, Any]:
    """Per-alert options, validated; the Retarus spellings (``validityMin``...) are accepted."""
    if not options:
        return {}
    result: dict[str, Any] = _ALERT_SCHEMA(wire.unalias(options))
    return result


def build_job(batch: Batch, settings: Mapping[str, Any], now: datetime
              ) -> tuple[dict[str, Any], dict[str, str], dict[str, dict[str, Any]]]:
    """The JobRequest body for ``batch`` under the adapter's ``settings``, the custom
    recipient refs -> delivery ids, and each delivery's SMS size (its parts)."""
    if not batch.items:
        raise ValidationError("to", "no recipients")
    if len(batch.items) > wire.MAX_RECIPIENTS_PER_JOB:
        raise ValidationError("to", f"{len(batch.items)} recipients; a Retarus job takes "
                              f"at most {wire.MAX_RECIPIENTS_PER_JOB}")
    try:
        alert = alert_options(dict(batch.options))
        extra = [wire.check_period(p) for p in batch.blackout_periods]
    except vol.Invalid as err:
        path = ".".join(str(p) for p in err.path)
        field = f"options.{path}" if path else "blackout_periods"
        raise ValidationError(field, err.msg) from None
    options = _job_options(batch, settings, alert, extra, now)
    if "encoding" not in options and not all(is_gsm7(item.text) for item in batch.items):
        # GSM 03.38 cannot carry the text: the service would refuse it (422 under
        # invalidCharacters REFUSE) or mangle it, so the job goes as UTF-16
        options["encoding"] = "UTF-16"
    texts = _texts(batch, settings, alert, options)
    messages: dict[str, list[dict[str, Any]]] = {}
    refs: dict[str, str] = {}
    overrides: dict[str, dict[str, Any]] = alert.get("recipients", {})
    for item in batch.items:
        recipient: dict[str, Any] = {"dst": format_number(item.number, NumberFormat.E164)}
        override = overrides.get(item.number) or overrides.get(item.contact or "") or {}
        if "customer_ref" in override:
            recipient["customerRef"] = refs_key = override["customer_ref"]
            refs[refs_key] = item.delivery_id
        elif settings["recipient_refs"]:
            recipient["customerRef"] = short_ref(item.delivery_id)
        if "blackout_periods" in override:
            recipient["blackoutPeriods"] = override["blackout_periods"]
        messages.setdefault(texts[item.delivery_id][0], []).append(recipient)
    body = {"options": options,
            "messages": [{"text": text, "recipients": recipients}
                         for text, recipients in messages.items()]}
    return body, refs, {key: size for key, (_, size) in texts.items()}

def _texts(batch: Batch, settings: Mapping[str, Any], alert: dict[str, Any],
           options: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Per delivery: the text to send (cut to ``maxParts`` if so configured) and its size,
    counted in the job's encoding (``TO_UTF16`` turns non-GSM text into UTF-16)."""
    if not all(item.text.strip() for item in batch.items):
        raise ValidationError("message", "empty SMS text")
    utf16 = options.get("encoding") == "UTF-16" or (
        options.get("invalidCharacters") == "TO_UTF16"
        and not all(is_gsm7(item.text) for item in batch.items))
    encoding = SmsEncoding.UCS2 if utf16 else SmsEncoding.GSM7
    over = alert.get("over_max_parts", settings["over_max_parts"])
    return {item.delivery_id: fit_text(item.text, encoding, options.get("maxParts"), over)
            for item in batch.items}

def _job_options(batch: Batch, cfg: Mapping[str, Any], alert: dict[str, Any],
                 extra_periods: list[str], now: datetime) -> dict[str, Any]:
    """The job's ``options``: the alert's own values over the adapter's, wire-named."""

    def pick(name: str) -> Any:
        return alert[name] if name in alert else cfg.get(name)

    sender = batch.sender or cfg.get("sender")
    options: dict[str, Any] = {}
    if sender:
        options["src"] = check_sender(sender)
    for name, wire_name in (("encoding", "encoding"), ("billcode", "billcode"),
                            ("status_requested", "statusRequested"), ("flash", "flash")):
        if pick(name) is not None:
            options[wire_name] = pick(name)
    options["customerRef"] = pick("customer_ref") or wire.job_ref(
        [item.alert_id for item in batch.items])
    if "validity_min" in alert:
        options["validityMin"] = alert["validity_min"]
    elif batch.expires is not None:
        options["validityMin"] = wire.validity_minutes(batch.expires, now)
    elif cfg.get("validity_min") is not None:
        options["validityMin"] = cfg["validity_min"]
    for name, wire_name in (("max_parts", "maxParts"),
                            ("invalid_characters", "invalidCharacters")):
        if pick(name) is not None:
            options[wire_name] = pick(name)
    if "qos" in alert:
        options["qos"] = alert["qos"]
    else:
        options["qos"] = "EXPRESS" if batch.priority is Priority.HIGH else cfg["qos"]
    if "job_period" in alert:
        options["jobPeriod"] = alert["job_period"]
    elif batch.not_before is not None and batch.not_before > now:
        options["jobPeriod"] = wire.iso_ms(batch.not_before)
    options["duplicateDetection"] = pick("duplicate_detection")
    periods = list(dict.fromkeys([*(pick("blackout_periods") or []), *extra_periods]))
    if periods:
        options["blackoutPeriods"] = periods
    return options
