"""The Faust application: moves records between Kafka and the :mod:`streams` engine.

Thin by design (see design.md): topics, tables, agents, web views and metrics wiring.
"""
