"""Do the topics keep the exactly-once worker's promises? Checked when it starts.

Exactly once holds only if what Kafka acknowledged survives a broker's failure and the
worker's state outlives the retention of its topic. Topics made by ``arbstream topics``
keep these by construction; topics made by hand, or changed since, may not. A worker
started on them says so at once, in one line (status 2), instead of losing records at
the first failover:

* every topic is replicated at least ``[kafka] replication`` times, with
  ``min.insync.replicas`` at least ``[kafka] min_insync_replicas``;
* no topic may elect an out-of-sync replica as its leader
  (``unclean.leader.election.enable``), which drops acknowledged records;
* the state topic is compacted and never deleted (``cleanup.policy=compact``): a deleted
  state would make a worker start its partitions from nothing.
"""

from __future__ import annotations

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from arbstream.agents.errors import DEPLOY_DOC, KafkaRefusedError
from arbstream.agents.kafka.clients import KafkaClients
from arbstream.agents.kafka.topics import Topics
from arbstream.agents.settings import Deployment
from arbstream.streams.errors import SetupError

GUIDE = "docs/deploy.md lists a cluster's settings"


async def check_guarantees(kafka: KafkaClients, config: Deployment) -> None:
    """Raise SetupError, in one line, naming the first topic whose settings would break
    the worker's guarantees (and how many more there are)."""
    topics = Topics(config.topic_prefix)
    names = [*topics.all(), topics.state]
    admin = kafka.admin()
    try:
        await admin.start()
        described = await admin.describe_topics(names)
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        responses = await admin.describe_configs(resources)
    except KafkaError as exc:  # the broker gone since it answered the topics' creation
        raise SetupError(f"Kafka at {kafka}: cannot read the topics' settings: {exc}") from exc
    finally:
        await admin.close()
    replicas = {
        t["topic"]: min((len(p["replicas"]) for p in t["partitions"]), default=0) for t in described
    }
    settings: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            name = resource["resource_name"]
            if resource["error_code"] == TopicAuthorizationFailedError.errno:
                raise KafkaRefusedError(
                    f"Kafka at {kafka.bootstrap} denies {kafka.security.principal} "
                    f"DescribeConfigs on topic {name!r}; the worker needs it ({DEPLOY_DOC})"
                )
            settings[name] = {
                entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]
            }
    problems = []
    wanted = config.kafka
    for name in names:
        found = settings.get(name, {})
        if replicas.get(name, 0) < wanted.replication:
            problems.append(
                f"topic {name!r} has {replicas.get(name, 0)} replicas, fewer than [kafka] "
                f"replication = {wanted.replication}"
            )
        min_isr = int(found.get("min.insync.replicas") or 1)
        if min_isr < wanted.min_isr:
            problems.append(
                f"topic {name!r} has min.insync.replicas = {min_isr}, below "
                f"[kafka] min_insync_replicas = {wanted.min_isr}: an acknowledged record could "
                "be on too few brokers to survive a failure"
            )
        if found.get("unclean.leader.election.enable") == "true":
            problems.append(
                f"topic {name!r} has unclean.leader.election.enable = true: an out-of-sync "
                "replica could become leader and drop committed records"
            )
    policy = settings.get(topics.state, {}).get("cleanup.policy", "")
    if set(policy.split(",")) != {"compact"}:
        problems.insert(
            0,
            f"topic {topics.state!r} has cleanup.policy = {policy or 'delete'}: the workers' "
            "state must be compacted and never deleted (cleanup.policy = compact)",
        )
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SetupError(f"{problems[0]}{more}; {GUIDE}")
