"""The venue side: a sans-I/O parser per WebSocket protocol (``protocols/``), the one
connection loop every feed runs (``connection.py``), its duplicate and sequence guard,
and the ``[feeds.*]`` settings. A feed yields records to whatever sink it is given; it
imports nothing of the project but :mod:`streams` (the process that joins feeds to Kafka
is ``arbstream.feed_process``).
"""
