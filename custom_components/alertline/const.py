"""Constants of the alertline integration: keys of entry data, options and subentries."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "alertline"

# config entry data
CONF_PROVIDER_TYPE: Final = "provider_type"
CONF_PROVIDER_OPTIONS: Final = "provider_options"
CONF_WEBHOOK_ID: Final = "webhook_id"

# config entry options
CONF_CONTACTS: Final = "contacts"
CONF_GROUPS: Final = "groups"
CONF_DEFAULT_CHANNEL: Final = "default_channel"
CONF_QUIET_HOURS: Final = "quiet_hours"
CONF_ALLOW: Final = "allow"
CONF_PER_HOUR_SMS: Final = "per_hour_sms"
CONF_PER_HOUR_VOICE: Final = "per_hour_voice"
CONF_ESCALATIONS: Final = "escalations"
CONF_MQTT_BASE_TOPIC: Final = "mqtt_base_topic"
DEFAULT_MQTT_BASE_TOPIC: Final = "alertline"

# route subentries
SUBENTRY_ROUTE: Final = "route"
CONF_ROUTE_NAME: Final = "name"
CONF_TO: Final = "to"
CONF_CHANNEL: Final = "channel"
CONF_PRIORITY: Final = "priority"
CONF_ESCALATION: Final = "escalation"
CONF_SENDER: Final = "sender"
CONF_TITLE: Final = "title"

EVENT_REPORT: Final = "alertline_report"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_ALERT_ID: Final = "alert_id"

# how long a send waits for the provider's first answer before returning "accepted"
SUBMIT_TIMEOUT: Final = 20.0
DEFAULT_WAIT_TIMEOUT: Final = 300.0
