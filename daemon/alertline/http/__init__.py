"""HTTP: the daemon's server, postbacks, metrics, heartbeats and web pages."""
