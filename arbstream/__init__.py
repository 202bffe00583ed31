"""The command line and the processes it runs: it reads the config file once, and wires
:mod:`streams`, :mod:`feeds`, :mod:`agents` and :mod:`simulator` into the worker, feed,
simulator and demo processes (health endpoints, logging, signals, supervision). It is
the only package that imports all the others, and none imports it.
"""

__version__ = "0.1.0"
