"""The Kafka plumbing every process shares, in one place: where the cluster is and how
to reach it (``clients``, ``security``), whether the broker answers (``probe``) and lets
this process in to do its role (``access``, ``roles``), the names of a deployment's
topics, group and transactional ids and how its topics are made (``topics``), and the
few private parts of aiokafka arbstream relies on (``aiokafka_private``).

The worker, the Faust runtime, the feeds' sink, ``produce``, the gateway and the command
line all take their clients and names from here; none of them imports another's module
for them.
"""
