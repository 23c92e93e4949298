"""The YAML configuration: schema (voluptuous), defaults, ``${ENV}`` secrets, and every error by path."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from .errors import ConfigError, ValidationError
from .model import Channel, Priority
from .phone import parse_e164
from .providers.registry import adapter_class, adapter_types

DEFAULT_PROVIDER_NAME = "sim"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = vol.Match(r"^[A-Za-z0-9_-]{1,64}$", msg="names may use letters, digits, _ and - only")


def _duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise vol.Invalid("expected a duration such as 30s, 5m or 2h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
        if not match:
            raise vol.Invalid("expected a duration such as 30s, 5m or 2h")
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[
            match.group(2)]
    if seconds < 0:
        raise vol.Invalid("a duration cannot be negative")
    return seconds


Duration = _duration


def _channels(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    result = []
    for item in items:
        try:
            result.append(Channel(str(item).lower()).value)
        except ValueError:
            raise vol.Invalid(f"unknown channel {item!r} (use sms or voice)") from None
    if not result:
        raise vol.Invalid("at least one channel is needed")
    return result


def _phone(value: Any) -> str:
    try:
        return parse_e164(str(value), field="phone")
    except ValidationError as err:
        raise vol.Invalid(err.reason) from None


def _daily_window(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(
            r"([01]\d|2[0-3]):[0-5]\d/([01]\d|2[0-3]):[0-5]\d", value.strip()):
        raise vol.Invalid("expected a daily window HH:MM/HH:MM, e.g. 22:00/07:00")
    return value.strip()


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise vol.Invalid("expected a list of names or numbers")
    return list(value)


MQTT_SCHEMA = vol.Schema({
    vol.Optional("host"): vol.Any(None, str),
    vol.Optional("port", default=1883): vol.All(int, vol.Range(min=1, max=65535)),
    vol.Optional("client_id", default="alertline"): vol.All(str, vol.Length(min=1, max=64)),
    vol.Optional("username"): vol.Any(None, str),
    vol.Optional("password"): vol.Any(None, str),
    vol.Optional("base_topic", default="alertline"): vol.Match(
        r"^[^#+\s]+$", msg="a topic without wildcards or spaces"),
    vol.Optional("discovery", default=True): bool,
    vol.Optional("discovery_prefix", default="homeassistant"): str,
    vol.Optional("keepalive", default=30): vol.All(int, vol.Range(min=5, max=3600)),
    vol.Optional("session_expiry", default=7 * 86400): vol.All(int, vol.Range(min=0)),
    vol.Optional("max_payload_bytes", default=64 * 1024): vol.All(int, vol.Range(min=256)),
    vol.Optional("tls"): vol.Any(None, {
        vol.Optional("ca_certs"): vol.Any(None, str),
        vol.Optional("certfile"): vol.Any(None, str),
        vol.Optional("keyfile"): vol.Any(None, str),
        vol.Optional("insecure", default=False): bool,
    }),
})

CONTACT_SCHEMA = vol.Schema({
    vol.Required("phone"): _phone,
    vol.Optional("locale"): str,
    vol.Optional("timezone"): str,
    vol.Optional("quiet_hours", default=[]): [_daily_window],
    vol.Optional("personalization", default={}): {str: vol.Coerce(str)},
})

ROUTE_SCHEMA = vol.Schema({
    vol.Required("to"): _string_list,
    vol.Optional("channel", default=["sms"]): _channels,
    vol.Optional("provider"): vol.Any(str, [str]),
    vol.Optional("escalation"): str,
    vol.Optional("sender"): str,
    vol.Optional("title"): str,
    vol.Optional("priority", default="normal"): vol.In([p.value for p in Priority]),
    vol.Optional("quiet_hours", default=[]): [_daily_window],
    vol.Optional("options", default={}): dict,
})

SECTION_SCHEMAS: dict[str, Any] = {
    "mqtt": vol.Any(None, MQTT_SCHEMA),
    "store": vol.Schema({vol.Optional("path", default="alertline.db"): str}),
    "http": vol.Schema({
        vol.Optional("enabled", default=True): bool,
        vol.Optional("host", default="127.0.0.1"): str,
        vol.Optional("port", default=8787): vol.All(int, vol.Range(min=0, max=65535)),
        vol.Optional("public_url"): vol.Any(None, vol.Url()),
        vol.Optional("postback_token"): vol.Any(None, vol.All(str, vol.Length(min=16))),
        vol.Optional("max_body_bytes", default=256 * 1024): vol.All(int, vol.Range(min=1024)),
    }),
    "alertmanager": vol.Schema({vol.Optional("token"): vol.Any(None, str)}),
    "defaults": vol.Schema({
        vol.Optional("provider"): str,
        vol.Optional("channel", default="sms"): vol.In([c.value for c in Channel]),
        vol.Optional("region"): vol.Any(None, vol.Match(r"^[A-Z]{2}$", msg="a country code like DE")),
        vol.Optional("tracking_deadline"): vol.Any(None, _duration),
    }),
    "providers": vol.Schema({_NAME: vol.Schema(
        {vol.Required("type"): vol.In(adapter_types())}, extra=vol.ALLOW_EXTRA)}),
    "contacts": vol.Schema({_NAME: CONTACT_SCHEMA}),
    "groups": vol.Schema({_NAME: _string_list}),
    "routes": vol.Schema({_NAME: ROUTE_SCHEMA}),
    "escalations": vol.Schema({_NAME: dict}),
    "limits": vol.Schema(dict),
    "logging": vol.Schema({
        vol.Optional("level", default="INFO"): vol.In(
            ["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"]),
        vol.Optional("json", default=False): bool,
    }),
}


def _validate_sections(data: dict[str, Any], problems: list[tuple[str, str]]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for key in data:
        if key not in SECTION_SCHEMAS:
            problems.append((str(key), "unknown section"))
    for key, schema in SECTION_SCHEMAS.items():
        value = data.get(key)
        if value is None and key != "mqtt":
            value = {}
        try:
            raw[key] = schema(value) if value is not None else None
        except vol.Invalid as err:
            problems.extend(_collect(err, key))
            raw[key] = schema({}) if key != "mqtt" else None
    return raw


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

    @property
    def mqtt(self) -> dict[str, Any]:
        """The ``mqtt`` section (``host`` None means: start the embedded broker)."""
        section: dict[str, Any] = self.raw.get("mqtt") or MQTT_SCHEMA({})
        return section

    @property
    def store_path(self) -> str:
        """Path of the SQLite store."""
        return str(self.raw["store"]["path"])

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
        return {k: substitute_env(v, env, _join(path, k), problems, secrets)
                for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, env, _join(path, str(i)), problems, secrets)
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


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _problem_text(error: vol.Invalid) -> str:
    message = error.error_message or str(error)
    if message in ("required key not provided",):
        return "required"
    if message == "extra keys not allowed":
        return "unknown option"
    return message


def _collect(error: vol.Invalid, prefix: str) -> list[tuple[str, str]]:
    errors = error.errors if isinstance(error, vol.MultipleInvalid) else [error]
    return [(_join(prefix, ".".join(str(p) for p in e.path)) if e.path else prefix,
             _problem_text(e)) for e in errors]


def validate_config(data: Any, env: Mapping[str, str] | None = None) -> Config:
    """A :class:`Config` from parsed YAML, or :class:`ConfigError` listing every problem by path."""
    problems: list[tuple[str, str]] = []
    secrets: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("", "the configuration must be a mapping of sections")])
    data = substitute_env(data, os.environ if env is None else env, "", problems, secrets)
    raw = _validate_sections(data, problems)
    providers = _validate_providers(raw, problems, secrets)
    contacts = {name: Contact(name=name, phone=c["phone"], locale=c.get("locale"),
                              timezone=c.get("timezone"), quiet_hours=tuple(c["quiet_hours"]),
                              personalization=dict(c["personalization"]))
                for name, c in raw["contacts"].items()}
    groups = {name: tuple(members) for name, members in raw["groups"].items()}
    _check_references(raw, providers, contacts, groups, problems)
    routes = {name: _route(name, r) for name, r in raw["routes"].items()}
    default_provider = raw["defaults"].get("provider") or next(iter(providers), "")
    if providers and default_provider not in providers:
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
    if problems:
        raise ConfigError(problems)
    return Config(raw=raw, providers=providers, contacts=contacts, groups=groups, routes=routes,
                  default_provider=default_provider,
                  default_channel=Channel(raw["defaults"]["channel"]),
                  default_region=raw["defaults"].get("region"), secrets=tuple(secrets))


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
            problems.extend(_collect(err, f"providers.{name}"))
            continue
        secrets.extend(str(validated[k]) for k in cls.secret_options if validated.get(k))
        result[name] = ProviderConfig(name=name, type=section["type"], options=validated)
    return result


def _check_references(raw: dict[str, Any], providers: dict[str, ProviderConfig],
                      contacts: dict[str, Contact], groups: dict[str, tuple[str, ...]],
                      problems: list[tuple[str, str]]) -> None:
    known = set(contacts) | set(groups)
    for name, members in groups.items():
        for index, member in enumerate(members):
            if member not in contacts and not _is_number(member):
                problems.append((f"groups.{name}.{index}", f"unknown contact {member!r}"))
    for name, route in raw["routes"].items():
        for index, target in enumerate(route["to"]):
            if target not in known and not _is_number(target):
                problems.append((f"routes.{name}.to.{index}",
                                 f"unknown contact or group {target!r}"))
        route_providers = route.get("provider") or []
        for provider in [route_providers] if isinstance(route_providers, str) else route_providers:
            if provider not in providers and raw["providers"]:
                problems.append((f"routes.{name}.provider", f"unknown provider {provider!r}"))
        escalation = route.get("escalation")
        if escalation and escalation not in raw["escalations"]:
            problems.append((f"routes.{name}.escalation",
                             f"unknown escalation policy {escalation!r}"))


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
        options=dict(raw["options"]))


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
        raise ConfigError([("", f"not valid YAML{where}: {getattr(err, 'problem', err)}")]) from None
    return validate_config(data, env)
