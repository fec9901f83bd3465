"""Specification of the local infrastructure (``itinera.common.devstack``): what it does
when a port is taken, and what it starts. Only private Tansu brokers are started here
(they listen within a tenth of a second); no second PostgreSQL is."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from itinera.common.devstack import Broker, Database, Infrastructure, free_port, port_open


@pytest.fixture
def listening() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
def bound() -> Iterator[int]:
    """A port some other program has bound without listening (yet)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        yield taken.getsockname()[1]


class TestATakenPort:
    def test_the_broker_refuses_it_and_says_so(self, listening: int) -> None:
        broker = Broker(port=listening)
        with pytest.raises(RuntimeError, match=f"port {listening} is taken"):
            broker.start()
        assert broker.process is None

    def test_the_database_refuses_it_before_touching_its_data_directory(
        self, listening: int, tmp_path: Path
    ) -> None:
        database = Database(data_dir=tmp_path / "postgres", port=listening)
        with pytest.raises(RuntimeError, match=f"port {listening} is taken"):
            database.start()
        assert database.process is None
        assert not (tmp_path / "postgres").exists()

    def test_bound_without_listening_is_refused_as_taken_too(self, bound: int) -> None:
        with pytest.raises(RuntimeError, match=f"port {bound} is taken"):
            Broker(port=bound).start()

    def test_for_the_database_stops_the_broker_started_before_it(
        self, listening: int, tmp_path: Path
    ) -> None:
        kafka_port = free_port()
        with pytest.raises(RuntimeError, match=f"port {listening} is taken"):
            Infrastructure.start(tmp_path, kafka_port=kafka_port, pg_port=listening)
        assert not port_open("127.0.0.1", kafka_port)


class TestABroker:
    def test_listens_on_its_port_until_stopped(self, tmp_path: Path) -> None:
        broker = Broker(port=free_port(), log_path=tmp_path / "tansu.log")
        broker.start()
        try:
            assert port_open("127.0.0.1", broker.port)
            assert broker.bootstrap == f"127.0.0.1:{broker.port}"
        finally:
            broker.stop()
        assert broker.process is None
        assert not port_open("127.0.0.1", broker.port)


class TestExternalServers:
    def test_are_used_as_they_are_and_nothing_is_started(self, tmp_path: Path) -> None:
        infra = Infrastructure.start(
            tmp_path / "state", kafka_bootstrap="kafka.example:9092", database_url="postgresql://db.example/x"
        )
        assert (infra.kafka_bootstrap, infra.database_url) == (
            "kafka.example:9092",
            "postgresql://db.example/x",
        )
        assert infra.broker is None
        assert infra.database is None
        assert not (tmp_path / "state").exists()
        infra.stop()
