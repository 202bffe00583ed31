"""The gateway: arbstream's committed output topics (and the venues' latest quotes)
served to subscribers outside Kafka, over WebSocket and Server-Sent Events with
per-client filters, plus a web page that shows the market at a glance. It reads Kafka
with ``read_committed`` and never writes to it; it stands on ``streams`` (the config,
sessions, input validation) and ``agents`` (topic names) and nothing above them."""
