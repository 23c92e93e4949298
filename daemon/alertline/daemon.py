"""``alertline run``: the store, the engine, the MQTT bridge, the outbox publisher, the HTTP server.

With no ``mqtt.host`` configured the daemon starts an embedded broker (amqtt, MQTT 3.1.1) on
127.0.0.1 and prints the commands to try it. SIGTERM or SIGINT stop it cleanly: inbound messages
under way are finished and acknowledged, provider requests in flight complete, pending reports are
published, ``offline`` is published, and the store is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import signal
import sys
from typing import Any, TextIO

from alertline import __version__
from alertline.clock import Clock
from alertline.cluster.member import ClusterMember
from alertline.config.sections import Config
from alertline.engine.core import Engine
from alertline.engine.scheduler import Scheduler
from alertline.errors import AlertlineError
from alertline.factory import create_engine
from alertline.http.guard import ConnectionLimits
from alertline.http.metrics import DaemonMetrics
from alertline.http.postbacks import PostbackReceiver, callback_base_url
from alertline.http.server import HttpServer
from alertline.http.web.app import web_for_config
from alertline.http.web.views import WebPages
from alertline.mqtt.bridge import InboundMessage, MqttBridge, Outgoing
from alertline.mqtt.client import MqttSettings
from alertline.mqtt.discovery import Discovery, StatePublisher, node_id
from alertline.mqtt.embedded import EMBEDDED_HOST, EmbeddedBrokerError, start_embedded_broker
from alertline.mqtt.inbound import InboundHandler
from alertline.mqtt.outbox import OutboxPublisher, accepted_sink, report_sink
from alertline.mqtt.session_drain import drain_session
from alertline.mqtt.topics import Topics
from alertline.oncall.http import heartbeat_routes
from alertline.oncall.service import OnCallService
from alertline.store.errors import StoreBusyError, StoreError
from alertline.store.health import describe
from alertline.store.protocol import Store
from alertline.store.select import shared
from alertline.store.sqlite_retention import keep_pruning

_LOGGER = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED = 0, 1
EXIT_EVICTED = 75  # EX_TEMPFAIL: another cluster member took this one's alerts; start afresh
DRAIN_SECONDS = 10.0
FAILING_STORE_DRAIN_SECONDS = 1.0
FLUSH_SECONDS = 5.0
TRY_NUMBER = "+491701234567"
TRY_MESSAGE = "Water leak in the basement"


class DaemonStartError(AlertlineError):
    """The daemon cannot start: the reason says what to change."""


def run_daemon(config: Config, config_path: str | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the process exit code."""
    daemon = Daemon(config, config_path=config_path)
    try:
        return asyncio.run(daemon.run())
    except KeyboardInterrupt:
        return 130


class Daemon:
    """Every part of a running daemon, started and stopped in order."""

    def __init__(self, config: Config, *, config_path: str | None = None,
                 clock: Clock | None = None, scheduler: Scheduler | None = None,
                 out: TextIO | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.clock = clock
        self.scheduler = scheduler
        self.out = out or sys.stdout
        section = config.mqtt
        self.topics = Topics(section["base_topic"], section["discovery_prefix"],
                             section.get("response_prefix"))
        self.embedded_broker: Any = None
        self.store: Store | None = None
        self.engine: Engine | None = None
        self.bridge: MqttBridge | None = None
        self.http: HttpServer | None = None
        self.web: WebPages | None = None
        self.handler: InboundHandler | None = None
        self.publisher: OutboxPublisher | None = None
        self.discovery: Discovery | None = None
        self.states: StatePublisher | None = None
        self.oncall: OnCallService | None = None
        self.cluster: ClusterMember | None = None
        self._exit_code = EXIT_OK
        self._bridge_started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_requested = asyncio.Event()
        self._engine_started = False

    async def run(self) -> int:
        """Start, wait for a signal, stop; the exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        try:
            await self.start()
        except AlertlineError as err:
            _LOGGER.error("%s", err)
            self.out.write(f"alertline: cannot start: {err}\n")
            await self.stop()
            return EXIT_FAILED
        await self._stop_requested.wait()
        _LOGGER.info("stopping: finishing the work under way")
        await self.stop()
        return self._exit_code

    def request_stop(self) -> None:
        """Ask the daemon to stop (a signal handler)."""
        if self._stop_requested.is_set():
            _LOGGER.warning("already stopping; waiting for the work under way")
        self._stop_requested.set()

    async def start(self) -> None:
        """Start every part; raises :class:`DaemonStartError` with the reason."""
        config = self.config
        section = config.mqtt
        settings = await self._mqtt_settings()
        postbacks_token = config.http.get("postback_token")
        engine = create_engine(config, clock=self.clock, scheduler=self.scheduler,
                               callback_base_url=self._callback_base(postbacks_token))
        self.store, self.engine = engine.store, engine
        cluster_store = shared(engine.store) if config.clustered else None
        if cluster_store is not None:
            self.cluster = ClusterMember(cluster_store, engine, lease=config.cluster_lease,
                                         name=config.cluster_member, on_evicted=self._evicted,
                                         can_publish=lambda: bool(self.bridge and
                                                                  self.bridge.connected),
                                         client_id=settings.client_id,
                                         on_sessions_left=self._drain_sessions)
        self.web, engine.linked_texts = web_for_config(engine, config, status=self._overview)
        engine.add_accepted_sink(accepted_sink(self.topics))
        engine.add_outbox_sink(report_sink(self.topics))
        discovery_on = bool(section.get("discovery", True))
        # in a cluster every member watches the shared status topic: when one goes away (its
        # will says offline) the others say online again, the service still runs
        watched = [self.topics.status] if self.cluster is not None else []
        self.handler = InboundHandler(engine, self.topics,
                                      max_payload_bytes=int(section["max_payload_bytes"]),
                                      on_homeassistant_online=self._homeassistant_online)
        self.oncall = OnCallService(engine, self.topics, publish=self._publish_retained)
        self.bridge = MqttBridge(
            settings, status_topic=self.topics.status,
            subscriptions=self.topics.subscriptions(homeassistant=discovery_on)
            + self.oncall.subscriptions + watched,
            handler=self._handle, ordered=self.handler.ordered,
            retained_subscriptions=[self.topics.homeassistant_status, *watched],
            share_group=section["share_group"] if self.cluster is not None else None)
        self.publisher = OutboxPublisher(self.store, self.bridge)
        if self.cluster is not None:  # it publishes while it holds the outbox lease
            self.cluster.on_outbox = self.publisher.publish_while
        metrics = DaemonMetrics(engine, handler=self.handler, bridge=self.bridge,
                                publisher=self.publisher)
        metrics.sources.append(self.oncall.families)
        if self.cluster is not None:
            metrics.sources.append(self.cluster.families)
        self.discovery = Discovery(self.bridge, self.store, config, self.topics,
                                   node=node_id(section["share_group"] if self.cluster
                                                else settings.client_id),
                                   enabled=discovery_on)
        self.states = StatePublisher(self.bridge, self.topics, metrics.stats)
        engine.subscribe(self.publisher.notify)
        engine.subscribe(self.states.on_report)
        self.bridge.add_connect_hook(self._connected)
        self.store.health.add_listener(self._store_health_changed)
        try:
            await engine.start(before_resume=self.cluster.join if self.cluster else None)
        except StoreBusyError as err:
            raise DaemonStartError(str(err)) from None
        except (StoreError, OSError) as err:
            raise DaemonStartError(f"the store {engine.store.path} cannot be opened: "
                                   f"{describe(err)} (check its directory's space and "
                                   "permissions)") from None
        self._engine_started = True
        await self.oncall.start()
        if config.http.get("enabled", True):
            await self._start_http(metrics, postbacks_token)
        await self.bridge.start()
        self._bridge_started = True
        self._start_tasks()
        _LOGGER.info("alertline %s running: MQTT %s:%d (MQTT %s), base topic %r, store %s",
                     __version__, settings.host, settings.port, settings.protocol,
                     self.topics.base, engine.store.path)
        if self.embedded_broker is not None:
            self.out.write(self.try_it_text(settings.port))
            self.out.flush()

    async def _mqtt_settings(self) -> MqttSettings:
        """The broker's settings; the embedded broker is started when none is configured."""
        section = self.config.mqtt
        host, protocol = section.get("host"), None
        if not host:
            try:
                self.embedded_broker = await start_embedded_broker(int(section["port"]))
            except EmbeddedBrokerError as err:
                raise DaemonStartError(str(err)) from None
            host, protocol = EMBEDDED_HOST, "3.1.1"
        return MqttSettings.from_config(section, host=host, protocol=protocol)

    def _start_tasks(self) -> None:
        """The loops that run beside the engine: publishing, states, pruning, the cluster."""
        assert self.publisher is not None and self.states is not None
        assert self.store is not None and self.engine is not None
        if self.cluster is None:  # in a cluster, the outbox lease's holder publishes
            self.publisher.publish_while(True)
        else:
            self.cluster.start()
        self._tasks = [asyncio.create_task(self.states.run()),
                       asyncio.create_task(keep_pruning(self.store, self.engine.clock.now,
                                                        self.config.store_retention))]

    def _callback_base(self, token: str | None) -> str | None:
        if not token:
            return None
        http = self.config.http
        root = http.get("public_url") or f"http://{http['host']}:{http['port']}"
        return callback_base_url(root, token)

    async def _start_http(self, metrics: DaemonMetrics, token: str | None) -> None:
        assert self.engine is not None
        http = self.config.http
        receiver = None
        if token:
            receiver = PostbackReceiver(token, self.engine, self.engine.providers.get,
                                        max_body=int(http["max_body_bytes"]),
                                        redactor=self.engine.redactor)
        am_token = self.config.raw["alertmanager"].get("token")
        heartbeats = self.oncall.heartbeats if self.oncall is not None else None
        self.http = HttpServer(self.engine, metrics, host=http["host"], port=int(http["port"]),
                               max_body_bytes=int(http["max_body_bytes"]),
                               alertmanager_token=am_token,
                               health=self.health, postbacks=receiver, heartbeats=heartbeats,
                               routes=[*(heartbeat_routes(heartbeats, am_token) if heartbeats
                                         else ()),
                                       *(self.web.routes() if self.web is not None else ())],
                               limits=ConnectionLimits.from_config(http))
        try:
            await self.http.start()
        except OSError as err:
            self.http = None
            raise DaemonStartError(f"the HTTP server cannot listen on {http['host']}:"
                                   f"{http['port']}: {err.strerror or err} (change http.port, "
                                   "or set http.enabled: false)") from None

    async def _drain_sessions(self, client_ids: list[str]) -> None:
        """Handle what stopped members' MQTT sessions hold (see :mod:`.mqtt.session_drain`)."""
        assert self.bridge is not None and self.handler is not None
        await asyncio.gather(*(drain_session(
            self.bridge, client_id, handler=self._handle, ordered=self.handler.ordered,
            share_group=self.config.mqtt["share_group"]) for client_id in client_ids))

    def _evicted(self) -> None:
        """Another member took this one's alerts over: stop, exit with ``EXIT_EVICTED``."""
        self._exit_code = EXIT_EVICTED
        self.request_stop()



    async def _overview(self) -> dict[str, Any]:
        """What the web dashboard shows beside the alerts."""
        return await self.oncall.overview() if self.oncall is not None else {}

    def health(self) -> dict[str, Any]:
        """The ``/healthz`` body: ``failing`` (answered with 503) while the store cannot be
        written, ``degraded`` while the broker is away (the daemon catches up by itself)."""
        connected = self.bridge is not None and self.bridge.connected
        engine = self.engine
        store = self.store.health if self.store is not None else None
        watch = self.oncall.watch if self.oncall is not None else None
        providers = watch.to_json() if watch is not None else {}
        providers_up = all(p["up"] for p in providers.values())
        body: dict[str, Any] = {
            "status": "ok" if connected and providers_up else "degraded",
            "mqtt": "connected" if connected else "disconnected",
            "store": "ok",
            "open_alerts": engine.open_alerts if engine else 0,
            "queue_depth": engine.queue_depth() if engine else 0,
            "providers": providers,
            "version": __version__}
        if store is not None and not store.available:
            body.update(status="failing", store="unavailable", store_error=store.error,
                        store_down_seconds=round(store.down_seconds, 1))
        if self.cluster is not None:
            body["cluster"] = self.cluster.health()
        return body

    def _store_health_changed(self, available: bool) -> None:
        """The store failed or works again: say so on the status topic (Home Assistant shows
        the entities unavailable while it is ``degraded``)."""
        if self.bridge is not None:
            self.bridge.set_availability(b"online" if available else b"degraded")

    async def _handle(self, message: InboundMessage) -> list[Outgoing]:
        """Heartbeat pings (and Watchdog notifications) first, then the inbound handler."""
        assert self.handler is not None
        if self.cluster is not None and message.topic == self.topics.status:
            if message.payload == b"offline" and self.bridge is not None and \
                    not self._stop_requested.is_set():
                self.bridge.set_availability(self.bridge.availability)  # we still serve
            return []
        if self.oncall is not None:
            answers = await self.oncall.handle(message)
            if answers is not None:
                return list(answers)
        return await self.handler.handle(message)

    def _publish_retained(self, topic: str, payload: bytes) -> None:
        """Publish a retained state; before the bridge runs, its connect hook publishes all."""
        if self.bridge is None or not self._bridge_started:
            return
        self.bridge.publish(topic, payload, retain=True).add_done_callback(
            lambda f: f.cancelled() or f.exception())

    async def _connected(self, session_present: bool) -> None:
        assert self.discovery is not None and self.states is not None
        assert self.publisher is not None
        self.publisher.notify()
        if self.oncall is not None:
            self._bridge_started = True
            self.oncall.republish()
        with contextlib.suppress(Exception):
            await self.states.republish(session_present)
        try:
            await self.discovery.publish()
        except Exception as err:
            _LOGGER.warning("publishing the discovery configs failed: %s", err)

    async def _homeassistant_online(self) -> None:
        """Home Assistant (re)started: it needs our availability, configs and states again."""
        assert self.bridge is not None
        _LOGGER.info("Home Assistant is online: republishing discovery and states")
        self.bridge.publish(self.topics.status, self.bridge.availability,
                            retain=True).add_done_callback(
            lambda f: f.cancelled() or f.exception())
        await self._connected(True)

    async def stop(self) -> None:
        """Stop every part that was started, finishing the work under way (bounded)."""
        if self.bridge is not None:
            self.bridge.leave_share_group()
            self.bridge.stop_accepting()
        if self.http is not None:
            await self.http.stop()
        # work waiting for a failing store will not finish: do not wait for it (it was never
        # acknowledged, and the store makes one last attempt when it closes)
        drain = DRAIN_SECONDS if self.store is None or self.store.health.available \
            else FAILING_STORE_DRAIN_SECONDS
        if self.bridge is not None and not await self.bridge.drain(drain):
            _LOGGER.warning("inbound messages still being handled; the broker redelivers them")
        if self.engine is not None and self._engine_started:
            try:
                await asyncio.wait_for(self.engine.drain(), drain)
            except TimeoutError:
                _LOGGER.warning("provider requests still in flight; they resume on restart")
        if self.publisher is not None and self.bridge is not None and self.bridge.connected \
                and self.publisher.publishing \
                and not await self.publisher.flush(min(FLUSH_SECONDS, drain)):
            _LOGGER.warning("reports not yet published stay in the outbox for the next start")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.publisher is not None:
            await self.publisher.halt()
        if self.cluster is not None and self._engine_started:
            await self.cluster.stop()  # survivors take this one's open alerts at once
        if self.bridge is not None:
            await self.bridge.stop()
        if self.engine is not None and self._engine_started:
            self._engine_started = False
            await self.engine.stop(drain_timeout=drain)
        if self.embedded_broker is not None:
            with contextlib.suppress(Exception):
                await self.embedded_broker.shutdown()
        _LOGGER.info("stopped")

    def try_it_text(self, port: int) -> str:
        """The commands that send a first alert through the embedded broker."""
        request = f'{{"to": "{TRY_NUMBER}", "message": "{TRY_MESSAGE}"}}'
        config = f" --config {shlex.quote(self.config_path)}" if self.config_path else ""
        return (f"alertline: no mqtt.host configured, so an embedded MQTT broker listens on "
                f"{EMBEDDED_HOST}:{port} (simulated provider unless configured). Try it:\n"
                f"  mosquitto_pub -h {EMBEDDED_HOST} -p {port} -q 1 -t {self.topics.send} "
                f"-m {shlex.quote(request)}\n"
                f"  alertline publish{config} --to {shlex.quote(TRY_NUMBER)} "
                f"{shlex.quote(TRY_MESSAGE)}\n")
