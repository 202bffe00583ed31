"""The venue simulator: the other end of the feeds. It serves a scenario's quotes (a file,
or an endless generated market) over every feed protocol on local WebSockets, paced by
event time, with faults on demand. It may use :mod:`arbstream.feeds` and
:mod:`arbstream.streams` (tests/test_layout.py holds it to that); nothing but the command
line imports it.
"""
