"""``create_engine``: the one way the daemon, the CLI and Home Assistant assemble an engine.

Before it, each host built the store, a redactor, the provider context and the engine by hand,
and the engine made a second redactor of its own: a secret an adapter registered on the context's
redactor (a provider option marked secret) was masked in provider errors, but not in the failure
reasons the engine wrote into reports. Here one :class:`Redactor` serves the providers, the engine
and whatever the host hands it to (postbacks, logs, Home Assistant's diagnostics).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx

from alertline import adapters
from alertline.clock import Clock
from alertline.config.sections import Config, validate_config
from alertline.engine.core import Engine
from alertline.engine.scheduler import Scheduler
from alertline.providers.base import Provider, ProviderContext
from alertline.providers.registry import adapter_class
from alertline.redact import Redactor
from alertline.store.protocol import Store
from alertline.store.select import open_store
from alertline.store.sqlite import SqliteStore

__all__ = ["account_config", "create_engine", "remove_store"]


def create_engine(config: Config, *, store: Store | str | Path | None = None,
                  clock: Clock | None = None, scheduler: Scheduler | None = None,
                  http: httpx.AsyncClient | None = None, callback_base_url: str | None = None,
                  exclusive: bool = True, secrets: Iterable[str] = (),
                  redactor: Redactor | None = None,
                  providers: dict[str, Provider] | None = None,
                  max_in_flight: int = 4) -> Engine:
    """An engine for ``config``, not yet started (``await engine.start()`` opens the store).

    ``store``: a store to use, or the path of a SQLite store to open; when omitted, the one the
    configuration names (PostgreSQL at ``store.url``, else SQLite at ``store.path``). A SQLite
    store is locked against a second process while ``exclusive`` (the daemon and Home Assistant
    own theirs; ``alertline status`` only reads). ``http`` is a shared HTTP client for
    the adapters (Home Assistant's); ``callback_base_url`` where push providers post status.
    ``secrets`` are extra values to mask; ``redactor`` one to share (with the log formatter).
    ``providers`` replaces the configured ones (tests)."""
    if store is None:
        store = open_store(config, exclusive=exclusive)
    elif isinstance(store, str | Path):
        store = SqliteStore(store, exclusive=exclusive)
    redactor = redactor if redactor is not None else Redactor()
    for secret in [*config.secrets, *secrets]:
        redactor.add(secret)
    context = ProviderContext(http=http, redactor=redactor, callback_base_url=callback_base_url)
    if clock is not None:
        context.clock = clock
    engine = Engine(config, store, clock=clock, scheduler=scheduler, providers=providers,
                    context=context, max_in_flight=max_in_flight)
    return engine


def account_config(provider_type: str, provider_options: Mapping[str, Any], *, store_path: str,
                   default_channel: str | None = None, contacts: Mapping[str, Any] | None = None,
                   groups: Mapping[str, Any] | None = None,
                   escalations: Mapping[str, Any] | None = None,
                   routes: Mapping[str, Mapping[str, Any]] | None = None,
                   quiet_hours: Iterable[str] = (), allow: Iterable[str] = (),
                   per_hour: Mapping[str, int] | None = None, region: str | None = None,
                   timezone: str | None = None) -> Config:
    """The validated configuration of a host with one provider account and no YAML file (Home
    Assistant's config entries): the provider (named after its type), contacts, groups,
    escalations, routes and guard rails; no HTTP server (the host receives provider postbacks
    itself); ``quiet_hours`` hold for every route without its own, in ``timezone``; the default
    channel is SMS if the provider sends SMS. ``${VAR}`` is never read from the host's
    environment. Raises ``ConfigError`` listing every problem."""
    default_quiet = list(quiet_hours)
    route_sections = {name: dict(section) for name, section in (routes or {}).items()}
    for section in route_sections.values():
        if default_quiet and "quiet_hours" not in section:
            section["quiet_hours"] = default_quiet
    limits: dict[str, Any] = {"allow": list(allow)} if allow else {}
    if per_hour:
        limits["per_hour"] = dict(per_hour)
    if timezone:
        limits["timezone"] = timezone
    channel = default_channel or adapters.default_channel(
        adapters.adapter_channels(adapter_class(provider_type)))
    defaults: dict[str, Any] = {"provider": provider_type, "channel": channel}
    if region:
        defaults["region"] = region
    return validate_config({
        "store": {"path": store_path},
        "http": {"enabled": False},
        "defaults": defaults,
        "providers": {provider_type: {"type": provider_type, **provider_options}},
        "contacts": dict(contacts or {}),
        "groups": dict(groups or {}),
        "escalations": dict(escalations or {}),
        "routes": route_sections,
        "limits": limits,
    }, env={})


def remove_store(path: str | Path) -> None:
    """Delete the SQLite store at ``path`` with its write-ahead log, shared memory and lock
    files (a host deleting an account it created the store for). Blocking: run it in an
    executor."""
    path = Path(path)
    for suffix in ("", "-wal", "-shm", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()
