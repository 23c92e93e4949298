"""Intake: what arrives (requests, Alertmanager payloads) parsed and expanded into alerts."""
