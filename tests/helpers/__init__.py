"""What the tests share: real brokers (one, a secured one, a cluster) and the clients
and helpers to use them, the processes of a live deployment and the comparison of what
they publish with replay, the gateway's clients, generated streams, the JSON Schemas of
the records, Prometheus, and the paths of the repository."""
