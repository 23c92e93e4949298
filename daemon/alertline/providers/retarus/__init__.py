"""Retarus: SMS (REST and HTTP Simple) and Voice (SOAP)."""
