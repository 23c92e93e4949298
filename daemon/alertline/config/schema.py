"""The configuration's voluptuous schemas, section by section, and their error paths."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import voluptuous as vol

from alertline.engine.allowlist import allow_entry
from alertline.engine.policy import quiet_window, time_zone
from alertline.errors import ValidationError
from alertline.http.web.passwords import is_password_hash
from alertline.intake.request import ROUTE_FIELDS, personal_value
from alertline.model import Channel, Priority
from alertline.oncall.schema import HEARTBEAT_SCHEMA, SCHEDULE_SCHEMA, WATCH_SCHEMA
from alertline.phone import parse_e164
from alertline.providers.registry import adapter_types


def join_path(path: str, key: Any) -> str:
    """``path.key`` (or ``key`` at the top)."""
    return f"{path}.{key}" if path else str(key)


def problem_text(error: vol.Invalid) -> str:
    """A short reason for a voluptuous error."""
    message = error.error_message or str(error)
    if message in ("required key not provided",):
        return "required"
    if message == "extra keys not allowed":
        return "unknown option"
    return message


def collect_problems(error: vol.Invalid, prefix: str) -> list[tuple[str, str]]:
    """Every ``(path, reason)`` in a voluptuous error, below ``prefix``."""
    errors = error.errors if isinstance(error, vol.MultipleInvalid) else [error]
    return [(join_path(prefix, ".".join(str(p) for p in e.path)) if e.path else prefix,
             problem_text(e)) for e in errors]



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


def _personal_value(value: Any) -> str:
    text = str(value)
    problem = personal_value(text)
    if problem is not None:
        raise vol.Invalid(problem)
    return text


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise vol.Invalid("expected a list of names or numbers")
    return list(value)


def _share_group(value: Any) -> str:
    """An MQTT shared-subscription group name (``$share/<group>/...``): MQTT 5 forbids ``/``,
    ``+`` and ``#`` in it, and an empty one is no group."""
    if not isinstance(value, str) or not value:
        raise vol.Invalid("expected a non-empty name for the MQTT shared subscriptions")
    if any(c in value for c in "/+#"):
        raise vol.Invalid(f"{value!r} is not a valid share group name: it cannot contain "
                          "/, + or #")
    return value


CLIENT_ID_MAX = 64
DEFAULT_CLIENT_ID = "alertline"


def cluster_client_id(hostname: str) -> str:
    """The default MQTT client id in cluster mode: ``alertline-<hostname>``, so that daemons on
    different hosts do not take each other's session (the broker drops the older connection of
    a client id). Only letters, digits, ``-`` and ``_`` (what every broker accepts)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", hostname).strip("-")
    return f"{DEFAULT_CLIENT_ID}-{name}"[:CLIENT_ID_MAX] if name else DEFAULT_CLIENT_ID


MQTT_SCHEMA = vol.Schema({
    vol.Optional("host"): vol.Any(str, None),
    vol.Optional("port", default=1883): vol.All(int, vol.Range(min=1, max=65535)),
    # no default here: it depends on cluster mode (Config.mqtt fills it in)
    vol.Optional("client_id"): vol.All(str, vol.Length(min=1, max=CLIENT_ID_MAX)),
    vol.Optional("share_group", default="alertline"): _share_group,
    vol.Optional("username"): vol.Any(str, None),
    vol.Optional("password"): vol.Any(str, None),
    vol.Optional("base_topic", default="alertline"): vol.Match(
        r"^[^#+\s]+$", msg="a topic without wildcards or spaces"),
    vol.Optional("response_prefix"): vol.Any(None, vol.Match(
        r"^[^#+\s]+$", msg="a topic prefix without wildcards or spaces")),
    vol.Optional("discovery", default=True): bool,
    vol.Optional("discovery_prefix", default="homeassistant"): str,
    vol.Optional("keepalive", default=30): vol.All(int, vol.Range(min=5, max=3600)),
    vol.Optional("session_expiry", default=7 * 86400): vol.All(int, vol.Range(min=0)),
    vol.Optional("max_payload_bytes", default=64 * 1024): vol.All(int, vol.Range(min=256)),
    vol.Optional("protocol", default="5"): vol.All(
        vol.Coerce(str), vol.In(["5", "3.1.1"], msg="5 or 3.1.1 (the MQTT protocol version)")),
    vol.Optional("tls"): vol.Any({
        vol.Optional("ca_certs"): vol.Any(str, None),
        vol.Optional("certfile"): vol.Any(str, None),
        vol.Optional("keyfile"): vol.Any(str, None),
        vol.Optional("insecure", default=False): bool,
    }, None),
})

CONTACT_SCHEMA = vol.Schema({
    vol.Required("phone"): _phone,
    vol.Optional("locale"): str,
    vol.Optional("timezone"): time_zone,
    vol.Optional("quiet_hours", default=[]): [quiet_window],
    vol.Optional("personalization", default={}): {str: _personal_value},
})

ROUTE_SCHEMA = vol.Schema({
    vol.Required("to"): _string_list,
    vol.Optional("channel", default=["sms"]): _channels,
    vol.Optional("provider"): vol.Any(str, [str]),
    vol.Optional("escalation"): str,
    vol.Optional("sender"): str,
    vol.Optional("title"): str,
    vol.Optional("priority", default="normal"): vol.In([p.value for p in Priority]),
    vol.Optional("quiet_hours", default=[]): [quiet_window],
    vol.Optional("fallback_sms", default=False): bool,
    vol.Optional("ack_link", default=False): bool,
    vol.Optional("options", default={}): dict,
    vol.Optional("allow_override", default=[]): [vol.In(
        ROUTE_FIELDS, msg=f"one of {', '.join(ROUTE_FIELDS)}")],
})

_CAPS = vol.Schema({vol.Optional(c.value): vol.All(int, vol.Range(min=0)) for c in Channel})
LIMITS_SCHEMA = vol.Schema({
    vol.Optional("allow", default=[]): [allow_entry],
    vol.Optional("per_hour", default={}): _CAPS,
    vol.Optional("per_day", default={}): _CAPS,
    vol.Optional("routes", default={}): {_NAME: {vol.Optional("per_hour", default={}): _CAPS,
                                                 vol.Optional("per_day", default={}): _CAPS}},
    vol.Optional("duplicate_window", default=0): _duration,
    vol.Optional("not_before_horizon", default=30 * 86400): _duration,
    vol.Optional("timezone", default="UTC"): time_zone,
    vol.Optional("quiet_hours_override", default="high"): vol.In(
        ["high", "none"], msg="high (high-priority alerts ignore quiet hours) or none"),
})

ESCALATION_SCHEMA = vol.Schema({
    vol.Required("steps"): vol.All([{
        vol.Optional("to"): _string_list,
        vol.Optional("channel"): vol.In(["sms", "voice", "both"], msg="sms, voice or both"),
        vol.Optional("wait", default=300): _duration,
        vol.Optional("ack_link", default=False): bool,
    }], vol.Length(min=1, max=20, msg="between 1 and 20 steps")),
    vol.Optional("repeat", default=0): vol.All(int, vol.Range(min=0, max=10)),
    vol.Optional("advance_on_failure", default=False): bool,
    vol.Optional("ack_digit", default="1"): vol.All(
        vol.Coerce(str), vol.Match(r"^[0-9]$", msg="one digit 0-9")),
    vol.Optional("ack_prompt", default="Press {digit} to acknowledge."): str,
})

def _password_hash(value: Any) -> str:
    if not isinstance(value, str) or not is_password_hash(value):
        raise vol.Invalid("expected a hash printed by `alertline hash-password`")
    return value


WEB_SCHEMA = vol.Schema({
    vol.Optional("enabled", default=True): bool,
    vol.Optional("users", default={}): {_NAME: {vol.Required("password_hash"): _password_hash}},
    vol.Optional("trusted_header"): vol.Any(vol.Match(r"^[A-Za-z0-9-]{1,64}$",
                                                      msg="an HTTP header name"), None),
    vol.Optional("trusted_proxies", default=["127.0.0.1", "::1"]): [str],
    vol.Optional("secret"): vol.Any(vol.All(str, vol.Length(
        min=16, msg="at least 16 characters")), None),
    vol.Optional("link_ttl", default=3 * 86400): _duration,
    vol.Optional("session_ttl", default=12 * 3600): _duration,
    vol.Optional("link_resolve", default=False): bool,
})


def _member(value: Any) -> str | None:
    """A daemon's name in the cluster: up to 64 letters, digits and ``. - _ :`` (or None)."""
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9.:_-]{1,64}", value):
        raise vol.Invalid("expected a name of up to 64 letters, digits and . - _ : "
                          "(this daemon's name in the cluster)")
    return value


CLUSTER_SCHEMA = vol.Schema({
    # how long a daemon's claim on a piece of work lasts without renewal: a dead daemon's work
    # is taken over after at most this long
    vol.Optional("lease", default=15): vol.All(_duration, vol.Range(
        min=3, max=300, msg="between 3 and 300 seconds")),
    # this daemon's name in the cluster (None: the cluster core derives one from host and pid)
    vol.Optional("member"): _member,
})

POSTGRES_SCHEMES = ("postgresql", "postgres")


def _postgres_url(value: Any) -> str:
    """A PostgreSQL URL (``postgresql://user:password@host:port/dbname``); the reason it is not
    one never repeats it (it may hold a password)."""
    if not isinstance(value, str) or urlsplit(value).scheme.lower() not in POSTGRES_SCHEMES:
        raise vol.Invalid("expected a PostgreSQL URL: postgresql://user:password@host:port/dbname")
    try:
        urlsplit(value).port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise vol.Invalid("the port of this PostgreSQL URL is not a number") from None
    return value


def _one_store(value: Any) -> Any:
    """``store.path`` (SQLite) and ``store.url`` (PostgreSQL) exclude each other."""
    if isinstance(value, dict) and value.get("path") is not None and \
            value.get("url") is not None:
        raise vol.Invalid("store.url (PostgreSQL) and store.path (SQLite) exclude each other: "
                          "give one of them", path=["url"])
    return value


def url_password(url: Any) -> str | None:
    """The password in a database URL (its userinfo, else a ``password`` query parameter), so
    the config can redact it; None when it holds none."""
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    if parts.password:
        return unquote(parts.password)
    found = parse_qs(parts.query).get("password")
    return found[0] if found else None


SECTION_SCHEMAS: dict[str, Any] = {
    "mqtt": vol.Any(MQTT_SCHEMA, None),
    "store": vol.All(_one_store, vol.Schema({
        # the SQLite file; beside it the web key, also when store.url selects PostgreSQL
        vol.Optional("path", default="alertline.db"): str,
        vol.Optional("url"): _postgres_url,
        # finished alerts are pruned after this long (#12.14)
        vol.Optional("retention", default="30d"): vol.All(
            _duration, vol.Range(min=1, msg="at least 1s"))})),
    "http": vol.Schema({
        vol.Optional("enabled", default=True): bool,
        vol.Optional("host", default="127.0.0.1"): str,
        vol.Optional("port", default=8787): vol.All(int, vol.Range(min=0, max=65535)),
        vol.Optional("public_url"): vol.Any(vol.Url(), None),
        vol.Optional("postback_token"): vol.Any(vol.All(str, vol.Length(
            min=16, msg="at least 16 characters")), None),
        vol.Optional("max_body_bytes", default=256 * 1024): vol.All(int, vol.Range(min=1024)),
        vol.Optional("max_connections", default=256): vol.All(int, vol.Range(min=1)),
        vol.Optional("max_connections_per_client", default=32): vol.All(int, vol.Range(min=1)),
        vol.Optional("header_timeout", default=10): vol.All(_duration, vol.Range(
            min=0.1, msg="at least 0.1 seconds")),
        vol.Optional("body_timeout", default=30): vol.All(_duration, vol.Range(
            min=0.1, msg="at least 0.1 seconds")),
    }),
    "alertmanager": vol.Schema({vol.Optional("token"): vol.Any(str, None)}),
    "web": WEB_SCHEMA,
    "defaults": vol.Schema({
        vol.Optional("provider"): str,
        vol.Optional("channel", default="sms"): vol.In([c.value for c in Channel]),
        vol.Optional("region"): vol.Any(
            vol.Match(r"^[A-Z]{2}$", msg="a country code like DE"), None),
        vol.Optional("tracking_deadline"): vol.Any(_duration, None),
    }),
    "limits": LIMITS_SCHEMA,
    "logging": vol.Schema({
        vol.Optional("level", default="INFO"): vol.In(
            ["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"]),
        vol.Optional("json", default=False): bool,
    }),
    "watch": WATCH_SCHEMA,
    "cluster": CLUSTER_SCHEMA,
}


# Sections that map names to entries: each entry is checked on its own, so one broken entry
# neither hides the problems of its siblings nor makes references to it look unknown.
NAMED_SECTIONS: dict[str, Any] = {
    "providers": vol.Schema({vol.Required("type"): vol.In(adapter_types())},
                            extra=vol.ALLOW_EXTRA),
    "contacts": CONTACT_SCHEMA,
    "groups": _string_list,
    "routes": ROUTE_SCHEMA,
    "escalations": ESCALATION_SCHEMA,
    "schedules": SCHEDULE_SCHEMA,
    "heartbeats": HEARTBEAT_SCHEMA,
}


def _validate_named(key: str, value: Any, problems: list[tuple[str, str]],
                    broken: set[str]) -> dict[str, Any]:
    """The valid entries of a named section; the names of invalid ones go to ``broken``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append((key, "expected a mapping of names to entries"))
        return {}
    valid: dict[str, Any] = {}
    for name, entry in value.items():
        path = join_path(key, name)
        try:
            _NAME(name)
        except vol.Invalid as err:
            problems.append((path, problem_text(err)))
            continue
        try:
            valid[name] = NAMED_SECTIONS[key](entry)
        except vol.Invalid as err:
            problems.extend(collect_problems(err, path))
            broken.add(f"{key}.{name}")
    return valid


def validate_sections(data: dict[str, Any], problems: list[tuple[str, str]],
                       broken: set[str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for key in data:
        if key not in SECTION_SCHEMAS and key not in NAMED_SECTIONS:
            problems.append((str(key), "unknown section"))
    for key in NAMED_SECTIONS:
        raw[key] = _validate_named(key, data.get(key), problems, broken)
    for key, schema in SECTION_SCHEMAS.items():
        value = data.get(key)
        if value is None and key != "mqtt":
            value = {}
        try:
            raw[key] = schema(value) if value is not None else None
        except vol.Invalid as err:
            problems.extend(collect_problems(err, key))
            raw[key] = schema({}) if key != "mqtt" else None
    return raw
