"""alertline: turn alerts into phone calls and SMS.

The public face of the library: what the daemon, the CLI, Home Assistant and any other host
use. ``create_engine(config)`` builds the store, the redactor, the providers and the engine;
everything else here is what a host hands in or gets back (configuration, requests, reports,
errors) and the pieces every host needs around an engine (the MQTT outbox drainer, report
waiting, postbacks, the adapter registry for its forms). Deeper modules are the library's own
and may change shape between releases.
"""

# first: modules imported below read the version while this package is still being imported
__version__ = "0.1.0"

from alertline.adapters import (
    AdapterOption,
    adapter_channels,
    adapter_options,
    check_provider,
    default_channel,
    pushes_status,
)
from alertline.config.sections import Config, load_config, validate_config
from alertline.engine.core import Accepted, Engine
from alertline.errors import (
    AlertlineError,
    AuthError,
    ConfigError,
    NotFoundError,
    ProviderError,
    RateLimitedError,
    RejectedError,
    TransientError,
    ValidationError,
)
from alertline.factory import account_config, create_engine, remove_store
from alertline.http.postbacks import PROVIDER_PLACEHOLDER, PostbackReceiver, read_limited
from alertline.intake.request import AlertRequest, parse_request
from alertline.model import AlertState, Channel, Delivery, DeliveryState, Priority, Report
from alertline.mqtt.outbox import (
    OutboxBroker,
    OutboxPublisher,
    accepted_sink,
    add_report_sinks,
    report_sink,
)
from alertline.mqtt.topics import Topics
from alertline.providers.base import Capabilities, Provider, ProviderContext, StatusMode
from alertline.providers.registry import adapter_class, adapter_types
from alertline.redact import MASK, SECRET_KEYS, Redactor
from alertline.reports_waiting import (
    ReportCondition,
    ReportWaiters,
    nothing_sent,
    provider_answered,
)
from alertline.store.errors import StoreBusyError
from alertline.store.protocol import Store
from alertline.store.sqlite import SqliteStore
from alertline.store.sqlite_retention import keep_pruning, prune_finished

__all__ = [
    "MASK",
    "PROVIDER_PLACEHOLDER",
    "SECRET_KEYS",
    "Accepted",
    "AdapterOption",
    "AlertRequest",
    "AlertState",
    "AlertlineError",
    "AuthError",
    "Capabilities",
    "Channel",
    "Config",
    "ConfigError",
    "Delivery",
    "DeliveryState",
    "Engine",
    "NotFoundError",
    "OutboxBroker",
    "OutboxPublisher",
    "PostbackReceiver",
    "Priority",
    "Provider",
    "ProviderContext",
    "ProviderError",
    "RateLimitedError",
    "Redactor",
    "RejectedError",
    "Report",
    "ReportCondition",
    "ReportWaiters",
    "SqliteStore",
    "StatusMode",
    "Store",
    "StoreBusyError",
    "Topics",
    "TransientError",
    "ValidationError",
    "__version__",
    "accepted_sink",
    "account_config",
    "adapter_channels",
    "adapter_class",
    "adapter_options",
    "adapter_types",
    "add_report_sinks",
    "check_provider",
    "create_engine",
    "default_channel",
    "keep_pruning",
    "load_config",
    "nothing_sent",
    "parse_request",
    "provider_answered",
    "prune_finished",
    "pushes_status",
    "read_limited",
    "remove_store",
    "report_sink",
    "validate_config",
]
