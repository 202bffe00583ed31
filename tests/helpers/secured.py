"""A secured broker for tests (``KAFKA_SECURITY=sasl_ssl deploy/kafka/kafka.sh up``): TLS
with a private CA, SCRAM users, ACLs enforced. Each user's client settings are read from
the files the launcher writes; the ACLs of docs/deploy.md are granted by running the
commands of its ACL block, as an operator would."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from arbstream.agents.kafka.clients import KafkaClients, kafka_clients
from helpers.kafka import KAFKA_SH, free_port, launched, scaled
from helpers.paths import REPO

#: The launcher's users (deploy/kafka/security.sh); admin is the super user.
USERS = ("admin", "feed", "worker", "gateway", "faust", "nobody")
ACL_BLOCK = "<!-- the ACL commands: tests/test_secured_kafka.py runs every line of this block -->"


@dataclass(frozen=True)
class SecuredBroker:
    port: int
    data_dir: Path

    def env(self, user: str, mtls: bool = False) -> dict[str, str]:
        """The ``ARBSTREAM_*`` variables of ``user`` (SASL_SSL, or mutual TLS)."""
        name = f"{user}-mtls.env" if mtls else f"{user}.env"
        lines = (self.data_dir / "clients" / name).read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def clients(self, user: str = "admin") -> KafkaClients:
        return kafka_clients(self.env(user))

    def password(self, user: str) -> str:
        return (self.data_dir / "secrets" / f"{user}.password").read_text().strip()

    def acls(self, *args: str) -> str:
        """``kafka.sh acls ARGS``: Kafka's kafka-acls tool as the admin."""
        proc = subprocess.run(
            ["bash", str(KAFKA_SH), "acls", *args],
            env={**os.environ, "KAFKA_PORT": str(self.port)},
            capture_output=True,
            text=True,
            timeout=scaled(60),
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def grant(self, user: str, prefix: str) -> None:
        """Run docs/deploy.md's ACL commands for ``user`` with ``topic_prefix`` ``prefix``."""
        commands = documented_acls(prefix)[user]
        assert commands, f"docs/deploy.md grants {user} nothing"
        for args in commands:
            self.acls(*args)


def documented_acls(prefix: str) -> dict[str, list[list[str]]]:
    """docs/deploy.md's ``kafka-acls.sh`` commands, per user, with ``$P`` = ``prefix``;
    each without the tool's name and its connection options (``$ADMIN``)."""
    text = (REPO / "docs" / "deploy.md").read_text()
    block = text.split(ACL_BLOCK, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)
    out: dict[str, list[list[str]]] = {}
    for line in joined.splitlines():
        if not line.startswith("kafka-acls.sh "):
            continue
        words = shlex.split(line.replace("$P", prefix))
        assert words[:2] == ["kafka-acls.sh", "$ADMIN"], words
        user = words[words.index("--allow-principal") + 1].removeprefix("User:")
        out.setdefault(user, []).append(words[2:])
    return out


def secured_broker(tmp: Path) -> Iterator[SecuredBroker]:
    """A secured broker on a free port, stopped (and its data dir deleted) after."""
    port = free_port()
    data_dir = tmp / str(port)
    env = {
        **os.environ,
        "KAFKA_PORT": str(port),
        "KAFKA_DATA_DIR": str(data_dir),
        "KAFKA_SECURITY": "sasl_ssl",
    }
    for name in ("KAFKA_KEEP_DATA", "KAFKA_CONTROLLER_PORT", "KAFKA_USERS"):
        env.pop(name, None)
    with launched(env):
        yield SecuredBroker(port, data_dir)
