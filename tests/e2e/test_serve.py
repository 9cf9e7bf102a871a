"""`smsc serve` refuses to start, with a message and an exit code, when it cannot do its job:
a store whose schema is behind, a port in use, a config it cannot apply. It never hangs."""

import os
import socket

import pytest

pytestmark = pytest.mark.e2e

REFUSAL_TIMEOUT = 30  # seconds: a serve that is still running by then hangs (or serves)


def refused(server) -> str:
    """Run `smsc serve`, which must exit non-zero without listening; returns its output."""
    result = server.cli("serve", check=False, timeout=REFUSAL_TIMEOUT)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "SMPP listening" not in output, output
    return output


def test_serve_refuses_a_store_whose_schema_is_behind(smsc_factory):
    fresh = smsc_factory(upgrade=False, start=False)
    assert "smsc db upgrade" in refused(fresh)

    fresh.cli("db", "upgrade")
    fresh.start()
    assert fresh.running()


def test_serve_exits_when_its_port_is_taken(smsc_factory):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = smsc_factory(smpp={"port": port}, start=False)
        assert f"{port}" in refused(server)


def test_serve_exits_on_an_account_it_cannot_create(smsc_factory):
    server = smsc_factory(
        config={"accounts": [{"system_id": "carol", "password": "far-too-long"}]}, start=False
    )
    assert "password" in refused(server)


def test_serve_exits_on_an_unknown_config_key(smsc_factory):
    server = smsc_factory(smpp={"windw": 10}, start=False, upgrade=False)
    assert "smpp.windw: unknown key" in refused(server)


@pytest.mark.skipif(bool(os.environ.get("SMSC_TEST_PG_URL")), reason="SQLite serves one node")
def test_serve_refuses_a_second_node_on_a_sqlite_store(smsc_factory):
    first = smsc_factory()
    url = first.config["store"]["url"]
    second = smsc_factory(
        config={"store": {"url": url}, "cluster": {"node": "second"}}, upgrade=False, start=False
    )
    output = refused(second)
    assert "is serving this SQLite store" in output and "Traceback" not in output
    assert first.running()
