"""Deployment settings from the environment name the variable when they are wrong."""

from __future__ import annotations

import pytest

from arbstream.agents.errors import AgentError
from arbstream.agents.settings import broker_bootstrap, feed_metrics_port, web_port
from arbstream.streams.errors import ArbstreamError


@pytest.mark.parametrize(
    ("raw", "bootstrap"),
    [
        (None, "127.0.0.1:9092"),
        ("kafka://10.0.0.5:19092", "10.0.0.5:19092"),
        ("kafka://a:1;kafka://b:2", "a:1,b:2"),
        ("broker:9092", "broker:9092"),
    ],
)
def test_broker_bootstrap(raw: str | None, bootstrap: str) -> None:
    env = {} if raw is None else {"ARBSTREAM_BROKER": raw}
    assert broker_bootstrap(env) == bootstrap


@pytest.mark.parametrize("raw", ["kafka://", "kafka://host", "kafka://host:port", "host:70000", ""])
def test_bad_broker_names_the_variable(raw: str) -> None:
    with pytest.raises(AgentError, match="ARBSTREAM_BROKER") as info:
        broker_bootstrap({"ARBSTREAM_BROKER": raw})
    assert isinstance(info.value, ArbstreamError)


def test_web_port() -> None:
    assert web_port({}) == 6066
    assert web_port({"ARBSTREAM_WEB_PORT": "7000"}) == 7000
    with pytest.raises(AgentError, match="ARBSTREAM_WEB_PORT"):
        web_port({"ARBSTREAM_WEB_PORT": "http"})


def test_feed_metrics_port() -> None:
    assert feed_metrics_port({}) == 9464
    assert feed_metrics_port({"ARBSTREAM_FEED_METRICS_PORT": "9500"}) == 9500
    with pytest.raises(AgentError, match="ARBSTREAM_FEED_METRICS_PORT"):
        feed_metrics_port({"ARBSTREAM_FEED_METRICS_PORT": "0"})
