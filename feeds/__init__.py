"""Venue adapters: a pure parser per WebSocket protocol and one shared connection loop."""
