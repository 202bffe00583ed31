"""How arbstream's Kafka clients authenticate: TLS and SASL from the environment.

Every process builds its settings once, from these variables (docs/config.md), and
every client it creates (aiokafka producers, consumers and admin clients, the Faust
runtime's broker credentials, confluent-kafka's in the benchmarks) uses them:

=========================================  ==============================================
``ARBSTREAM_KAFKA_SECURITY_PROTOCOL``      PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL
``ARBSTREAM_KAFKA_SASL_MECHANISM``         PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
``ARBSTREAM_KAFKA_SASL_USERNAME``          the user
``ARBSTREAM_KAFKA_SASL_PASSWORD``          its password, or
``ARBSTREAM_KAFKA_SASL_PASSWORD_FILE``     a file holding it (one line)
``ARBSTREAM_KAFKA_SSL_CAFILE``             PEM CA of the brokers (default: the system's)
``ARBSTREAM_KAFKA_SSL_CERTFILE``/``KEYFILE``  client certificate and key (mutual TLS)
=========================================  ==============================================

Secrets come from the environment or files only: never from the config file or the
command line, and the password is never part of a repr, a log line or an error message.
Hostname verification is always on. A setting that cannot work (a SASL protocol without
a user, a CA file that is not PEM, TLS files with a plaintext protocol) is a SetupError
that names the variable, raised before anything connects.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from arbstream.streams.errors import SetupError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PREFIX = "ARBSTREAM_KAFKA_"
PROTOCOL = PREFIX + "SECURITY_PROTOCOL"
MECHANISM = PREFIX + "SASL_MECHANISM"
USERNAME = PREFIX + "SASL_USERNAME"
PASSWORD = PREFIX + "SASL_PASSWORD"
PASSWORD_FILE = PREFIX + "SASL_PASSWORD_FILE"
CAFILE = PREFIX + "SSL_CAFILE"
CERTFILE = PREFIX + "SSL_CERTFILE"
KEYFILE = PREFIX + "SSL_KEYFILE"
SASL_VARIABLES = (MECHANISM, USERNAME, PASSWORD, PASSWORD_FILE)
SSL_VARIABLES = (CAFILE, CERTFILE, KEYFILE)


@dataclass(frozen=True)
class KafkaSecurity:
    """How to authenticate to the brokers: nothing (``PLAINTEXT``), TLS, SASL, or both."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    #: Built once from the files above (None without TLS).
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def principal(self) -> str:
        """Who the brokers see, as far as the client knows: the SASL user, the client
        certificate's file, or nobody in particular."""
        if self.sasl:
            return f"user {self.username!r}"
        if self.certfile:
            return f"the client certificate {self.certfile}"
        return "an anonymous client"

    def describe(self) -> str:
        """The settings in one phrase, for logs and errors (never the password)."""
        if self.sasl:
            return f"{self.protocol}, {self.mechanism} as {self.username!r}"
        if self.certfile:
            return f"{self.protocol} with the client certificate {self.certfile}"
        return self.protocol

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context
        if self.sasl:
            options["sasl_mechanism"] = self.mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password
        return options

    def librdkafka(self) -> dict[str, str]:
        """The same settings as librdkafka (confluent-kafka) configuration keys."""
        conf = {"security.protocol": self.protocol.lower()}
        if self.tls:
            conf["ssl.endpoint.identification.algorithm"] = "https"
            if self.cafile:
                conf["ssl.ca.location"] = self.cafile
            if self.certfile:
                conf["ssl.certificate.location"] = self.certfile
                conf["ssl.key.location"] = self.keyfile or self.certfile
        if self.sasl:
            conf["sasl.mechanisms"] = str(self.mechanism)
            conf["sasl.username"] = str(self.username)
            conf["sasl.password"] = str(self.password)
        return conf


PLAINTEXT = KafkaSecurity()


def kafka_security(env: Mapping[str, str] = os.environ) -> KafkaSecurity:
    """The ``ARBSTREAM_KAFKA_*`` settings of ``env``; raises SetupError naming the
    variable that cannot work."""
    values = {
        name: env.get(name, "").strip() for name in (PROTOCOL, *SASL_VARIABLES, *SSL_VARIABLES)
    }
    protocol = (values[PROTOCOL] or "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise SetupError(f"{PROTOCOL}: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    security = KafkaSecurity(protocol)
    if not security.sasl:
        _refuse_set(values, SASL_VARIABLES, f"{PROTOCOL} is {protocol}, which has no SASL")
    if not security.tls:
        _refuse_set(values, SSL_VARIABLES, f"{PROTOCOL} is {protocol}, which has no TLS")
    mechanism = username = password = None
    if security.sasl:
        mechanism = values[MECHANISM].upper()
        if mechanism not in MECHANISMS:
            raise SetupError(
                f"{MECHANISM}: expected one of {', '.join(MECHANISMS)} with {protocol}, "
                f"got {mechanism!r}"
            )
        username = values[USERNAME]
        if not username:
            raise SetupError(f"{USERNAME}: required with {protocol}")
        password = _password(env, values)
    cafile, certfile, keyfile = values[CAFILE] or None, values[CERTFILE] or None, values[KEYFILE]
    if keyfile and not certfile:
        raise SetupError(f"{KEYFILE}: set, but {CERTFILE} is not (the key needs its certificate)")
    context = _ssl_context(cafile, certfile, keyfile or None) if security.tls else None
    return KafkaSecurity(
        protocol, mechanism, username, password, cafile, certfile, keyfile or None, context
    )


def _refuse_set(values: Mapping[str, str], names: tuple[str, ...], why: str) -> None:
    for name in names:
        if values[name]:
            raise SetupError(f"{name}: set, but {why} (set the protocol, or unset {name})")


def _password(env: Mapping[str, str], values: Mapping[str, str]) -> str:
    """The password from ``..._PASSWORD`` or from the file ``..._PASSWORD_FILE``: its
    first line, without the line end (a file written by ``echo``)."""
    # (not stripped: a password may begin or end with a space)
    direct, path = env.get(PASSWORD, ""), values[PASSWORD_FILE]
    if direct and path:
        raise SetupError(f"{PASSWORD} and {PASSWORD_FILE}: set only one of them")
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                direct = file.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SetupError(f"{PASSWORD_FILE}: cannot read {path}: {why}") from None
        if not direct:
            raise SetupError(f"{PASSWORD_FILE}: {path} is empty")
    if not direct:
        raise SetupError(f"{PASSWORD} or {PASSWORD_FILE}: required with SASL")
    return direct


def _ssl_context(cafile: str | None, certfile: str | None, keyfile: str | None) -> ssl.SSLContext:
    """A client context that verifies the brokers' certificates and host names, against
    ``cafile`` or the system's CAs, with the client certificate if one is given."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise SetupError(f"{CAFILE}: cannot use {cafile}: {_reason(exc)}") from None
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            names = f"{CERTFILE} / {KEYFILE}" if keyfile else CERTFILE
            raise SetupError(f"{names}: cannot use {certfile}: {_reason(exc)}") from None
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"{exc.reason or exc} (not a PEM file, or the key does not match)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
