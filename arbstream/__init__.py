"""The arbstream application shell: the command line that wires streams, agents and feeds."""

__version__ = "0.1.0"
