"""The Kafka security settings from the environment (agents/kafka/security.py): what each
variable does, and a clear error naming the variable for every setting that cannot work.
The certificates are real ones, made with openssl for the test."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from arbstream.agents.kafka.clients import KafkaClients, kafka_clients
from arbstream.agents.kafka.security import KafkaSecurity, kafka_security
from arbstream.streams.errors import SetupError

SASL = {
    "ARBSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "ARBSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "ARBSTREAM_KAFKA_SASL_USERNAME": "worker",
}
SECRET = "s3cret-Pa55 word"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, and a client certificate with its key, in PEM files."""
    d = tmp_path_factory.mktemp("pki")
    for name in ("ca", "client", "other"):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", str(d / f"{name}.key"))  # fmt: skip
    openssl("req", "-x509", "-new", "-key", str(d / "ca.key"), "-subj", "/CN=test CA",
            "-days", "2", "-out", str(d / "ca.pem"))  # fmt: skip
    openssl("req", "-new", "-key", str(d / "client.key"), "-subj", "/CN=worker",
            "-out", str(d / "client.csr"))  # fmt: skip
    openssl("x509", "-req", "-in", str(d / "client.csr"), "-CA", str(d / "ca.pem"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
            "-out", str(d / "client.pem"))  # fmt: skip
    (d / "garbage.pem").write_text("not a certificate\n")
    return d


def test_plaintext_by_default() -> None:
    security = kafka_security({})
    assert security == KafkaSecurity()
    assert security.aiokafka() == {"security_protocol": "PLAINTEXT"}
    assert security.ssl_context is None
    assert str(KafkaClients("127.0.0.1:9092", security)) == "127.0.0.1:9092"


def test_sasl_ssl_with_the_password_in_a_file(pki: Path, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n")  # as `echo` writes it: the line end is not part of it
    env = {
        **SASL,
        "ARBSTREAM_KAFKA_SASL_PASSWORD_FILE": str(secret),
        "ARBSTREAM_KAFKA_SSL_CAFILE": str(pki / "ca.pem"),
        "ARBSTREAM_BROKER": "kafka://127.0.0.1:9093",
    }
    kafka = kafka_clients(env)
    options = kafka.security.aiokafka()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "worker"
    assert options["sasl_plain_password"] == SECRET
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test CA"),),)]
    # the password is in no text about the settings
    for text in (repr(kafka), str(kafka), repr(kafka.security), kafka.security.describe()):
        assert SECRET not in text
    assert str(kafka) == "127.0.0.1:9093 (SASL_SSL, SCRAM-SHA-512 as 'worker')"


def test_the_password_from_the_environment_and_the_system_cas() -> None:
    security = kafka_security({**SASL, "ARBSTREAM_KAFKA_SASL_PASSWORD": SECRET})
    assert security.password == SECRET
    assert security.ssl_context is not None and security.cafile is None
    conf = security.librdkafka()
    assert conf["security.protocol"] == "sasl_ssl"
    assert conf["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert "ssl.ca.location" not in conf


def test_mutual_tls(pki: Path) -> None:
    env = {
        "ARBSTREAM_KAFKA_SECURITY_PROTOCOL": "ssl",  # any case
        "ARBSTREAM_KAFKA_SSL_CAFILE": str(pki / "ca.pem"),
        "ARBSTREAM_KAFKA_SSL_CERTFILE": str(pki / "client.pem"),
        "ARBSTREAM_KAFKA_SSL_KEYFILE": str(pki / "client.key"),
    }
    security = kafka_security(env)
    assert security.protocol == "SSL" and not security.sasl
    assert "sasl_mechanism" not in security.aiokafka()
    assert security.librdkafka()["ssl.key.location"] == str(pki / "client.key")
    assert str(pki / "client.pem") in security.describe()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ARBSTREAM_KAFKA_SECURITY_PROTOCOL": "TLS"}, "ARBSTREAM_KAFKA_SECURITY_PROTOCOL"),
        ({"ARBSTREAM_KAFKA_SASL_USERNAME": "u"}, "ARBSTREAM_KAFKA_SASL_USERNAME"),
        ({"ARBSTREAM_KAFKA_SSL_CAFILE": "/x.pem"}, "ARBSTREAM_KAFKA_SSL_CAFILE"),
        (
            {
                "ARBSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "ARBSTREAM_KAFKA_SSL_CAFILE": "/x",
            },
            "ARBSTREAM_KAFKA_SSL_CAFILE",
        ),
        ({**SASL, "ARBSTREAM_KAFKA_SASL_MECHANISM": "GSSAPI"}, "ARBSTREAM_KAFKA_SASL_MECHANISM"),
        ({**SASL, "ARBSTREAM_KAFKA_SASL_MECHANISM": ""}, "ARBSTREAM_KAFKA_SASL_MECHANISM"),
        ({**SASL, "ARBSTREAM_KAFKA_SASL_USERNAME": ""}, "ARBSTREAM_KAFKA_SASL_USERNAME"),
        (SASL, "ARBSTREAM_KAFKA_SASL_PASSWORD"),
        (
            {
                **SASL,
                "ARBSTREAM_KAFKA_SASL_PASSWORD": SECRET,
                "ARBSTREAM_KAFKA_SASL_PASSWORD_FILE": "/p",
            },
            "ARBSTREAM_KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            {**SASL, "ARBSTREAM_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/password"},
            "ARBSTREAM_KAFKA_SASL_PASSWORD_FILE",
        ),
    ],
)
def test_settings_that_cannot_work_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SetupError) as error:
        kafka_security(env)
    assert variable in str(error.value).split(":")[0], error.value
    assert SECRET not in str(error.value)


def test_files_that_cannot_be_used(pki: Path, tmp_path: Path) -> None:
    ssl_env = {"ARBSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL"}
    empty = tmp_path / "empty"
    empty.write_text("")
    cases = [
        ({**SASL, "ARBSTREAM_KAFKA_SASL_PASSWORD_FILE": str(empty)}, "is empty"),
        ({**ssl_env, "ARBSTREAM_KAFKA_SSL_CAFILE": str(pki / "garbage.pem")}, "SSL_CAFILE"),
        ({**ssl_env, "ARBSTREAM_KAFKA_SSL_CAFILE": str(tmp_path / "missing.pem")}, "SSL_CAFILE"),
        ({**ssl_env, "ARBSTREAM_KAFKA_SSL_KEYFILE": str(pki / "client.key")}, "SSL_KEYFILE"),
        (  # the key is another certificate's
            {
                **ssl_env,
                "ARBSTREAM_KAFKA_SSL_CERTFILE": str(pki / "client.pem"),
                "ARBSTREAM_KAFKA_SSL_KEYFILE": str(pki / "other.key"),
            },
            "SSL_CERTFILE",
        ),
    ]
    for env, words in cases:
        with pytest.raises(SetupError, match=words):
            kafka_security(env)
