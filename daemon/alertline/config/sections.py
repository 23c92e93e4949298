"""The YAML configuration: voluptuous schema, defaults, ``${ENV}`` secrets, every error by path."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from alertline.config.schema import (
    DEFAULT_CLIENT_ID,
    MQTT_SCHEMA,
    cluster_client_id,
    collect_problems,
    join_path,
    url_password,
    validate_sections,
)
from alertline.errors import ConfigError, ValidationError
from alertline.model import Channel, Priority
from alertline.oncall.schedules import Schedules, schedule_name
from alertline.oncall.schema import build_schedules, is_url, schedule_problems, schedule_targets
from alertline.phone import parse_e164
from alertline.providers.registry import adapter_class
from alertline.redact import SECRET_KEYS, Redactor

DEFAULT_PROVIDER_NAME = "sim"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A named provider instance: adapter type and validated options."""

    name: str
    type: str
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Contact:
    """A person alertline can reach."""

    name: str
    phone: str
    locale: str | None = None
    timezone: str | None = None
    quiet_hours: tuple[str, ...] = ()
    personalization: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Route:
    """A named way to alert: recipients, channels, provider(s), policy."""

    name: str
    to: tuple[str, ...]
    channels: tuple[Channel, ...]
    providers: tuple[str, ...] = ()
    escalation: str | None = None
    sender: str | None = None
    title: str | None = None
    priority: Priority = Priority.NORMAL
    quiet_hours: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    fallback_sms: bool = False
    allow_override: frozenset[str] = frozenset()  # fields a message on its topic may set


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration."""

    raw: dict[str, Any]
    providers: dict[str, ProviderConfig]
    contacts: dict[str, Contact]
    groups: dict[str, tuple[str, ...]]
    routes: dict[str, Route]
    default_provider: str
    default_channel: Channel
    default_region: str | None
    secrets: tuple[str, ...]
    schedules: Schedules = field(default_factory=Schedules)

    @property
    def mqtt(self) -> dict[str, Any]:
        """The ``mqtt`` section (``host`` None means: start the embedded broker), with its
        ``client_id``: the configured one, else ``alertline``, in cluster mode
        ``alertline-<hostname>`` (:func:`~alertline.config.schema.cluster_client_id`)."""
        section: dict[str, Any] = dict(self.raw.get("mqtt") or MQTT_SCHEMA({}))
        if not section.get("client_id"):
            section["client_id"] = cluster_client_id(socket.gethostname()) \
                if self.clustered else DEFAULT_CLIENT_ID
        return section

    @property
    def store_path(self) -> str:
        """Path of the SQLite store (when ``store_url`` is None), and of files kept beside it."""
        return str(self.raw["store"]["path"])

    @property
    def store_retention(self) -> float:
        """Seconds a finished alert stays in the store (``store.retention``)."""
        return float(self.raw["store"]["retention"])

    @property
    def store_url(self) -> str | None:
        """The PostgreSQL store's URL (``store.url``, a secret: its password is redacted), or
        None for the SQLite store at ``store_path``."""
        url = self.raw["store"].get("url")
        return str(url) if url else None

    @property
    def clustered(self) -> bool:
        """Whether this daemon is one of several sharing the store: exactly when the store is
        PostgreSQL (``store.url``), which daemons on several hosts can reach."""
        return self.store_url is not None

    @property
    def cluster_lease(self) -> float:
        """Seconds a daemon's lease on a piece of work lasts without renewal (``cluster.lease``)."""
        return float(self.raw["cluster"]["lease"])

    @property
    def cluster_member(self) -> str | None:
        """This daemon's name in the cluster (``cluster.member``); None: derived by the cluster
        core from the host name and process id."""
        member = self.raw["cluster"].get("member")
        return str(member) if member is not None else None

    @property
    def http(self) -> dict[str, Any]:
        """The ``http`` section."""
        section: dict[str, Any] = self.raw["http"]
        return section

    @property
    def escalations(self) -> dict[str, Any]:
        """Escalation policies, by name."""
        section: dict[str, Any] = self.raw["escalations"]
        return section

    @property
    def limits(self) -> dict[str, Any]:
        """Guard rails: allowlist and caps."""
        section: dict[str, Any] = self.raw["limits"]
        return section

    def tracking_deadline(self) -> float | None:
        """A global tracking deadline override, in seconds."""
        value = self.raw["defaults"].get("tracking_deadline")
        return float(value) if value is not None else None


def substitute_env(value: Any, env: Mapping[str, str], path: str,
                   problems: list[tuple[str, str]], secrets: list[str]) -> Any:
    """``value`` with every ``${VAR}`` (or ``${VAR:-default}``) replaced from ``env``."""
    if isinstance(value, dict):
        return {k: substitute_env(v, env, join_path(path, k), problems, secrets)
                for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, env, join_path(path, str(i)), problems, secrets)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            secrets.append(env[name])
            return env[name]
        if default is not None:
            return default
        problems.append((path, f"environment variable {name} is not set"))
        return ""

    return _ENV_REF.sub(replace, value)


def _secret_values(value: Any) -> list[str]:
    """Every value under a secret-named key (password, token, ...), wherever it is."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.lower() in SECRET_KEYS and \
                    isinstance(item, str | int) and item:
                found.append(str(item))
            else:
                found.extend(_secret_values(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_secret_values(item))
    return found


def _check_cluster_web(raw: dict[str, Any], problems: list[tuple[str, str]]) -> None:
    """Daemons sharing a store sign the web page's links with one key, so it must be given."""
    web = raw.get("web") or {}
    pages = web.get("users") or web.get("trusted_header") or raw["http"].get("public_url")
    if raw["store"].get("url") and pages and web.get("enabled", True) and not web.get("secret"):
        problems.append(("web.secret", "required with store.url (cluster mode): every daemon "
                         "must sign the web page's links and sessions with the same secret"))


def validate_config(data: Any, env: Mapping[str, str] | None = None) -> Config:
    """A :class:`Config` from parsed YAML, or :class:`ConfigError` listing every problem by path."""
    problems: list[tuple[str, str]] = []
    secrets: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("", "the configuration must be a mapping of sections")])
    data = substitute_env(data, os.environ if env is None else env, "", problems, secrets)
    secrets.extend(_secret_values(data))
    # before any problem is reported: a store URL's password must not reach an error message
    store = data.get("store")
    if isinstance(store, dict) and (password := url_password(store.get("url"))):
        secrets.append(password)
    broken: set[str] = set()
    raw = validate_sections(data, problems, broken)
    providers = _validate_providers(raw, problems, secrets)
    contacts = {name: Contact(name=name, phone=c["phone"], locale=c.get("locale"),
                              timezone=c.get("timezone"), quiet_hours=tuple(c["quiet_hours"]),
                              personalization=dict(c["personalization"]))
                for name, c in raw["contacts"].items()}
    groups = {name: tuple(members) for name, members in raw["groups"].items()}
    _check_references(raw, providers, contacts, groups, problems, broken=broken)
    routes = {name: _route(name, r) for name, r in raw["routes"].items()}
    default_provider = raw["defaults"].get("provider") or next(iter(providers), "")
    if providers and default_provider not in providers and \
            f"providers.{default_provider}" not in broken:
        problems.append(("defaults.provider", f"unknown provider {default_provider!r}"))
    mqtt = raw.get("mqtt") or {}
    for key in ("password",):
        if mqtt.get(key):
            secrets.append(mqtt[key])
    for key in ("postback_token",):
        if raw["http"].get(key):
            secrets.append(raw["http"][key])
    if raw["alertmanager"].get("token"):
        secrets.append(raw["alertmanager"]["token"])
    # a calendar's secret address (Nextcloud, Google) grants read access: never log it
    secrets.extend(s["ical"] for s in raw["schedules"].values() if is_url(s.get("ical") or ""))
    _check_cluster_web(raw, problems)
    if problems:
        raise ConfigError(_first_per_path(problems, Redactor(secrets)))
    return Config(raw=raw, providers=providers, contacts=contacts, groups=groups, routes=routes,
                  default_provider=default_provider,
                  default_channel=Channel(raw["defaults"]["channel"]),
                  default_region=raw["defaults"].get("region"), secrets=tuple(secrets),
                  schedules=build_schedules(raw["schedules"], contacts))


def _first_per_path(problems: list[tuple[str, str]],
                    redactor: Redactor) -> list[tuple[str, str]]:
    """One problem per path (the first: later ones follow from it), with secrets masked."""
    seen: dict[str, str] = {}
    for path, reason in problems:
        seen.setdefault(path, redactor.text(reason))
    return list(seen.items())


def _validate_providers(raw: dict[str, Any], problems: list[tuple[str, str]],
                        secrets: list[str]) -> dict[str, ProviderConfig]:
    configured = raw["providers"] or {DEFAULT_PROVIDER_NAME: {"type": "simulator"}}
    result: dict[str, ProviderConfig] = {}
    for name, section in configured.items():
        options = {k: v for k, v in section.items() if k != "type"}
        cls = adapter_class(section["type"])
        try:
            validated = cls.validate_options(options)
        except vol.Invalid as err:
            problems.extend(collect_problems(err, f"providers.{name}"))
            secrets.extend(str(options[k]) for k in cls.secret_options if options.get(k))
            continue
        secrets.extend(str(validated[k]) for k in cls.secret_options if validated.get(k))
        result[name] = ProviderConfig(name=name, type=section["type"], options=validated)
    return result


def _check_references(raw: dict[str, Any], providers: dict[str, ProviderConfig],
                      contacts: dict[str, Contact], groups: dict[str, tuple[str, ...]],
                      problems: list[tuple[str, str]], *, broken: set[str]) -> None:
    known_contacts = set(contacts) | {b.split(".", 1)[1] for b in broken
                                      if b.startswith("contacts.")}
    known = known_contacts | set(groups) | {b.split(".", 1)[1] for b in broken
                                            if b.startswith("groups.")}
    known_providers = set(providers) | {b.split(".", 1)[1] for b in broken
                                        if b.startswith("providers.")}
    known |= {f"schedule:{name}" for name in raw["schedules"]} | {
        f"schedule:{b.split('.', 1)[1]}" for b in broken if b.startswith("schedules.")}
    for name, schedule in raw["schedules"].items():
        problems.extend((f"schedules.{name}.{path}", reason)
                        for path, reason in schedule_problems(schedule))
        for path, target in schedule_targets(schedule):
            if target not in known and not _is_number(target):
                problems.append((f"schedules.{name}.{path}", _unknown_target(target)))
    for name, members in groups.items():
        for index, member in enumerate(members):
            if member not in known and not _is_number(member):
                problems.append((f"groups.{name}.{index}",
                                 f"unknown contact or group {member!r}"))
    for name, route in raw["routes"].items():
        for index, target in enumerate(route["to"]):
            if target not in known and not _is_number(target):
                problems.append((f"routes.{name}.to.{index}",
                                 _unknown_target(target)))
        route_providers = route.get("provider") or []
        for provider in [route_providers] if isinstance(route_providers, str) else route_providers:
            if provider not in known_providers:
                problems.append((f"routes.{name}.provider", f"unknown provider {provider!r}"))
        escalation = route.get("escalation")
        if escalation and escalation not in raw["escalations"] and \
                f"escalations.{escalation}" not in broken:
            problems.append((f"routes.{name}.escalation",
                             f"unknown escalation policy {escalation!r}"))
    for name, policy in raw["escalations"].items():
        for index, step in enumerate(policy["steps"]):
            for position, target in enumerate(step.get("to") or []):
                if target not in known and not _is_number(target):
                    problems.append((f"escalations.{name}.steps.{index}.to.{position}",
                                     _unknown_target(target)))
    for name in raw["limits"]["routes"]:
        if name not in raw["routes"]:
            problems.append((f"limits.routes.{name}", f"unknown route {name!r}"))
    for name, heartbeat in raw["heartbeats"].items():
        if name in raw["routes"]:
            problems.append((f"heartbeats.{name}", "a route has this name: Alertmanager "
                             "notifications for it could not tell a ping from an alert"))
        if heartbeat.get("route") and heartbeat["route"] not in raw["routes"]:
            problems.append((f"heartbeats.{name}.route", f"unknown route {heartbeat['route']!r}"))
        for index, target in enumerate(heartbeat.get("to") or []):
            if target not in known and not _is_number(target):
                problems.append((f"heartbeats.{name}.to.{index}", _unknown_target(target)))
    if raw["watch"].get("route") and raw["watch"]["route"] not in raw["routes"]:
        problems.append(("watch.route", f"unknown route {raw['watch']['route']!r}"))


def _unknown_target(target: str) -> str:
    """Why ``target`` cannot be paged: no such schedule, or no such contact or group."""
    name = schedule_name(target)
    return f"unknown schedule {name!r}" if name is not None else \
        f"unknown contact or group {target!r}"


def _is_number(text: str) -> bool:
    try:
        parse_e164(text)
    except ValidationError:
        return False
    return True


def _route(name: str, raw: dict[str, Any]) -> Route:
    provider = raw.get("provider") or []
    return Route(
        name=name, to=tuple(raw["to"]), channels=tuple(Channel(c) for c in raw["channel"]),
        providers=tuple([provider] if isinstance(provider, str) else provider),
        escalation=raw.get("escalation"), sender=raw.get("sender"), title=raw.get("title"),
        priority=Priority(raw["priority"]), quiet_hours=tuple(raw["quiet_hours"]),
        options=dict(raw["options"]), fallback_sms=bool(raw.get("fallback_sms")),
        allow_override=frozenset(raw["allow_override"]))


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML file at ``path`` (None: the embedded defaults)."""
    if path is None:
        return validate_config({}, env)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([("", f"cannot read {path}: {err.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", err)
        raise ConfigError([("", f"not valid YAML{where}: {problem}")]) from None
    return validate_config(data, env)
