"""The store: where alerts, deliveries, timers and the outbox are kept."""
