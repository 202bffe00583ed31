"""The Kafka side: topics, how records travel to them, the feed process's Kafka sink,
``arbstream produce``, and the exactly-once worker that runs the :mod:`streams` engine
on the ticks topic (aiokafka transactions, state in a compacted topic).

It imports nothing of the project but :mod:`streams`; the command line
(:mod:`arbstream`) wires it into processes.
"""
