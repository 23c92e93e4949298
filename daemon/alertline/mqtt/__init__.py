"""MQTT: topics, inbound handling, the bridge to the broker, the outbox drainer, discovery."""
