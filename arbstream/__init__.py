"""arbstream: one import namespace for the whole project.

Its layers live in the repository's top-level folders and are linked in here as
subpackages: :mod:`arbstream.streams` (the pure engine), :mod:`arbstream.feeds` (the
venue side), :mod:`arbstream.agents` (the Kafka side), :mod:`arbstream.simulator` (the
venues' side of the feeds) and :mod:`arbstream.gateway` (the committed outputs for
subscribers outside Kafka). The modules directly in this package are the command line
and the processes it runs: it reads the config file once and wires the layers into the
worker, feed, simulator, gateway and demo processes (health endpoints, logging,
signals, supervision). They import every layer, and no layer imports them
(tests/test_layout.py).
"""

__version__ = "0.1.0"
