"""From a request to an alert: resolve route, contacts and groups, pick providers, personalise."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import voluptuous as vol

from alertline.config.sections import Config, Route
from alertline.errors import ValidationError
from alertline.intake.request import AlertRequest, resolve_expiry
from alertline.model import Alert, Channel, Priority, Recipient
from alertline.oncall.schedules import schedule_name
from alertline.phone import looks_like_number, parse_e164
from alertline.providers.base import Provider

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_GROUP_DEPTH = 5
DEFAULT_HORIZON = 30 * 86400.0  # seconds: how far ahead not_before may lie


def _days(span: timedelta) -> str:
    return f"{span.total_seconds() / 86400:g} days"


def new_alert_id() -> str:
    """A fresh, unique alert id."""
    return f"al-{uuid.uuid4().hex[:16]}"


BUILTIN_PLACEHOLDERS = frozenset({"ack_url"})


def personalise(template: str, values: Mapping[str, str], number: str) -> str:
    """``template`` with each ``${key}`` replaced; a missing key is a ValidationError.

    Only ``${name}`` placeholders are touched: other ``$`` text stays as it is, and values are
    inserted literally (never re-expanded), so a value cannot inject further placeholders.
    """
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values and key in BUILTIN_PLACEHOLDERS:
            return ""  # filled in per recipient when sent (an SMS acknowledgement link)
        if key not in values:
            raise ValidationError("personalization",
                                  f"no value for ${{{key}}} for recipient {number}")
        return values[key]

    return _PLACEHOLDER.sub(replace, template)


def placeholders(template: str) -> set[str]:
    """The ``${key}`` names used in ``template``."""
    return set(_PLACEHOLDER.findall(template))


def build_alert(request: AlertRequest, config: Config, providers: Mapping[str, Provider],
                *, now: datetime, alert_id: str | None = None, source: str | None = None) -> Alert:
    """A validated :class:`Alert`; ValidationError names the offending field and why."""
    route = _route(request, config)
    if route is not None and request.route_topic:
        _check_overrides(request, route)
    targets = request.to or (route.to if route else ())
    if not targets and not (request.escalation or (route and route.escalation)):
        raise ValidationError("to", "no recipients: give 'to' or a route with recipients",
                              code="missing")
    recipients = _recipients(targets, config, request.personalization, now)
    channels = request.channels or (route.channels if route else ()) or (config.default_channel,)
    provider = request.provider or (route.providers[0] if route and route.providers else None)
    if request.provider and request.provider not in providers:
        raise ValidationError("provider", f"unknown provider {request.provider!r}")
    options = {**(route.options if route else {}), **request.options}
    priority = request.priority or (route.priority if route else Priority.NORMAL)
    quiet = request.quiet_hours if request.quiet_hours is not None else (
        route.quiet_hours if route else ())
    alert = Alert(
        id=alert_id or request.id or new_alert_id(),
        message=request.message,
        title=request.title or (route.title if route else None),
        recipients=recipients,
        channels=tuple(channels),
        created_at=now,
        route=route.name if route else None,
        provider=provider,
        sender=request.sender or (route.sender if route else None),
        locale=request.locale,
        priority=priority,
        audio_url=request.audio_url,
        not_before=request.not_before,
        expires=resolve_expiry(request.expires, now),
        quiet_hours=tuple(quiet),
        escalation=request.escalation or (route.escalation if route else None),
        options=options,
        source=source,
    )
    if alert.escalation and alert.escalation not in config.escalations:
        raise ValidationError("escalation", f"unknown escalation policy {alert.escalation!r}")
    if alert.expires is not None and alert.expires <= now:
        raise ValidationError("expires", "already in the past")
    horizon = timedelta(seconds=float(config.limits.get("not_before_horizon", DEFAULT_HORIZON)))
    if alert.not_before is not None and alert.not_before > now + horizon:
        # a send scheduled months ahead is almost always a typo (a year, a time zone) and
        # would sit in the store holding a cap slot; limits.not_before_horizon raises it
        raise ValidationError("not_before", f"more than {_days(horizon)} ahead "
                              "(limits.not_before_horizon)")
    for channel in alert.channels:
        chosen = providers[provider_for(alert, channel, config, providers)]
        _check_options(chosen, options)
        # every delivery's text is personalised when it is queued (a voice call with audio
        # still carries it), so a missing key must be refused here, before anything is stored
        for recipient in recipients:
            personalise(alert.text_for(channel), recipient.personalization, recipient.number)
    return alert


def provider_candidates(alert: Alert, channel: Channel, config: Config,
                        providers: Mapping[str, Provider]) -> list[str]:
    """Providers that may carry ``channel`` for ``alert``, in failover order."""
    if alert.provider and alert.route is None:
        names: list[str] = [alert.provider]
    elif alert.route and config.routes[alert.route].providers:
        route_providers = list(config.routes[alert.route].providers)
        if alert.provider and alert.provider in route_providers:
            route_providers.remove(alert.provider)
        names = ([alert.provider] if alert.provider else []) + route_providers
    elif alert.provider:
        names = [alert.provider]
    else:
        names = [config.default_provider] + [n for n in providers if n != config.default_provider]
    capable = [n for n in names
               if n in providers and channel in providers[n].capabilities.channels]
    # a provider the watch found down goes last: new alerts need not wait for its timeouts
    healthy = [n for n in capable if getattr(providers[n], "healthy", True)]
    return healthy + [n for n in capable if n not in healthy]


def provider_for(alert: Alert, channel: Channel, config: Config,
                 providers: Mapping[str, Provider]) -> str:
    """The first provider that can carry ``channel`` for ``alert``."""
    candidates = provider_candidates(alert, channel, config, providers)
    if not candidates:
        wanted = alert.provider or config.default_provider
        raise ValidationError("channel", f"no configured provider can send {channel.value} "
                              f"(provider {wanted!r})")
    return candidates[0]


def expand_targets(targets: tuple[str, ...], config: Config,
                   now: datetime | None = None) -> tuple[Recipient, ...]:
    """Recipients for contact, group, number and ``schedule:`` targets (escalation steps), without
    repeats; a schedule names whoever is on call at ``now`` (when the step sends)."""
    return _recipients(targets, config, {}, now)


def _route(request: AlertRequest, config: Config) -> Route | None:
    if request.route is None:
        return None
    route = config.routes.get(request.route)
    if route is None:
        raise ValidationError("route", f"unknown route {request.route!r}", code="unknown_route")
    return route


def _check_overrides(request: AlertRequest, route: Route) -> None:
    """Refuse what a message on ``<base>/send/<route>`` sets but its route does not let it."""
    for name in request.route_fields():
        if name not in route.allow_override:
            raise ValidationError(name, f"route {route.name!r} decides this: a message on its "
                                  f"topic may not set it (routes.{route.name}.allow_override)")


def _recipients(targets: tuple[str, ...], config: Config,
                personalization: Mapping[str, Mapping[str, str]],
                now: datetime | None = None) -> tuple[Recipient, ...]:
    seen: dict[str, Recipient] = {}
    nobody: list[tuple[str, str]] = []  # schedules with nobody on call: fine beside others
    for index, target in enumerate(targets):
        expanded = _expand(target, config, f"to[{index}]", 0, now)
        if not expanded and schedule_name(target) is not None:
            nobody.append((f"to[{index}]", target))
        for number, contact in expanded:
            if number in seen:
                continue
            info = config.contacts.get(contact) if contact else None
            values = {"number": number, **({"name": contact} if contact else {})}
            values.update(info.personalization if info else {})
            values.update(personalization.get(contact or "", {}))
            values.update(personalization.get(number, {}))
            values.update(personalization.get(target, {}) if target != contact else {})
            seen[number] = Recipient(number=number, contact=contact,
                                     locale=info.locale if info else None,
                                     personalization=values)
    if nobody and not seen:
        field, target = nobody[0]
        raise ValidationError(field, f"nobody is on call in schedule {schedule_name(target)!r}",
                              code="nobody_on_call")
    return tuple(seen.values())


def _expand(target: str, config: Config, field: str, depth: int,
            now: datetime | None = None) -> list[tuple[str, str | None]]:
    if target in config.contacts:
        return [(config.contacts[target].phone, target)]
    members = config.groups.get(target)
    schedule = schedule_name(target)
    if schedule is not None:
        if schedule not in config.schedules:
            raise ValidationError(field, f"unknown schedule {schedule!r}", code="unknown_contact")
        members = config.schedules.on_call(schedule, now or datetime.now(UTC))
    if members is not None:
        if depth >= MAX_GROUP_DEPTH:
            raise ValidationError(field, f"group {target!r} nests too deeply")
        result: list[tuple[str, str | None]] = []
        for member in members:
            result.extend(_expand(member, config, field, depth + 1, now))
        return result
    if looks_like_number(target):
        return [(parse_e164(target, default_region=config.default_region, field=field), None)]
    raise ValidationError(field, f"unknown contact or group {target!r}", code="unknown_contact")


def _check_options(provider: Provider, options: dict[str, Any]) -> None:
    try:
        provider.validate_alert_options(options)
    except vol.Invalid as err:
        errors = err.errors if isinstance(err, vol.MultipleInvalid) else [err]
        first = errors[0]
        path = ".".join(str(p) for p in first.path)
        message = first.error_message or str(first)
        if message == "extra keys not allowed":
            message = f"not an option of {provider.type}"
        raise ValidationError(f"options.{path}" if path else "options", message) from None
