"""`smsc lockout list|lift` and `smsc account set --allow-network/--remove-network`, in process
with click's CliRunner, on a temp store named by a temp config."""

import json
import time

import pytest
from test_cli import fails, ok

from smsc import cli
from smsc.store import accounts, db, lockouts

NAT = "198.51.100.7"


@pytest.fixture
def store(db_url):
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()


def lock(store, kind: str, key: str, seconds: float = 600.0, failures: int = 5) -> None:
    now = time.time()
    with db.writing(store) as conn:
        lockouts.record(conn, kind, key, now, now + seconds, failures)


def active(store) -> list[tuple[str, str]]:
    with store.connect() as conn:
        return [(lo.kind, lo.key) for lo in lockouts.active(conn, time.time())]


# -- lockout list ----------------------------------------------------------------------------


def test_list(ready, store):
    assert json.loads(ok(ready("lockout", "list", "--json"))) == []
    lock(store, "account", "acme", 600, 5)
    lock(store, "address", NAT, 300, 50)
    lock(store, "account", "old", -1)  # over: not listed
    rows = json.loads(ok(ready("lockout", "list", "--json")))
    assert [(r["kind"], r["target"], r["failures"]) for r in rows] == [
        ("account", "acme", 5),
        ("address", NAT, 50),
    ]
    assert 590 <= rows[0]["remaining"] <= 600 and rows[0]["until"].endswith("+00:00")
    lines = ok(ready("lockout", "list")).splitlines()
    assert lines[0].split() == cli.LOCKOUT_COLUMNS
    assert lines[1].split()[:2] == ["account", "acme"] and lines[2].split()[:2] == ["address", NAT]


# -- lockout lift ----------------------------------------------------------------------------


def test_lift_an_account(ready, store):
    lock(store, "account", "acme")
    lock(store, "address", NAT)
    assert ok(ready("lockout", "lift", "--account", "acme")) == "lockout of account acme lifted\n"
    assert active(store) == [("address", NAT)]
    fails(ready("lockout", "lift", "--account", "acme"), "no lockout of account acme")


def test_lift_an_address(ready, store):
    lock(store, "address", NAT)
    assert ok(ready("lockout", "lift", "--address", NAT)) == f"lockout of address {NAT} lifted\n"
    assert active(store) == []


def test_lift_an_ipv6_address_by_its_64(ready, store):
    lock(store, "address", "2001:db8:1:2::/64")
    lock(store, "address", "2001:db8:9:9::/64")
    ok(ready("lockout", "lift", "--address", "2001:db8:1:2::77"))
    ok(ready("lockout", "lift", "--address", "2001:db8:9:9::/64"))
    assert active(store) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --account SYSTEM_ID or --address IP"),
        (("--account", "acme", "--address", NAT), "give --account SYSTEM_ID or --address IP"),
        (("--address", "acme"), "--address 'acme': an IP address"),
        (("--address", "10.0.0.0/8"), "an IP address (or the /64 of an IPv6 one)"),
    ],
)
def test_lift_errors(ready, args, message):
    result = ready("lockout", "lift", *args)
    assert result.exit_code != 0 and message in result.stderr


def test_lift_of_nothing(ready):
    fails(ready("lockout", "lift", "--address", NAT), f"no lockout of address {NAT}")


def test_help_has_examples(ready):
    for args in (("lockout",), ("lockout", "list"), ("lockout", "lift")):
        assert "Example:" in ok(ready(*args, "--help"))


# -- account networks ------------------------------------------------------------------------


def networks(store) -> str:
    with store.connect() as conn:
        return accounts.get(conn, "acme").networks


def test_allow_and_remove_networks(ready, store):
    out = ok(ready("account", "set", "acme", "--allow-network", "10.0.0.0/8",
                  "--allow-network", "2001:DB8::/32", "--allow-network", "192.0.2.7"))  # fmt: skip
    assert out.splitlines()[-1] == "acme binds from 10.0.0.0/8, 2001:db8::/32, 192.0.2.7/32"
    assert networks(store) == "10.0.0.0/8 2001:db8::/32 192.0.2.7/32"
    ok(ready("account", "set", "acme", "--allow-network", "10.0.0.0/8"))  # already: no change
    assert networks(store) == "10.0.0.0/8 2001:db8::/32 192.0.2.7/32"
    shown = json.loads(ok(ready("account", "show", "acme", "--json")))
    assert shown["networks"] == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]
    text = ok(ready("account", "show", "acme"))
    assert "10.0.0.0/8 2001:db8::/32 192.0.2.7/32" in text
    ok(ready("account", "set", "acme", "--remove-network", "2001:db8::/32",
            "--remove-network", "192.0.2.7"))  # fmt: skip
    assert networks(store) == "10.0.0.0/8"
    out = ok(ready("account", "set", "acme", "--remove-network", "10.0.0.0/8"))
    assert out.splitlines()[-1] == "acme binds from anywhere"
    assert networks(store) == ""
    assert "- (binds from anywhere)" in ok(ready("account", "show", "acme"))


def test_network_errors(ready, store):
    fails(
        ready("account", "set", "acme", "--allow-network", "10.1.2.3/8"),
        "--allow-network 10.1.2.3/8: has host bits set (the network is 10.0.0.0/8)",
    )
    fails(ready("account", "set", "acme", "--allow-network", "intranet"), "not a network")
    fails(ready("account", "set", "acme", "--remove-network", "10.0.0.0/8"), "has no network")
    assert networks(store) == ""  # nothing changed by a failed command
    ok(ready("account", "set", "acme", "--allow-network", "10.0.0.0/8"))
    fails(
        ready("account", "set", "acme", "--allow-network", "192.0.2.0/24",
             "--remove-network", "172.16.0.0/12"),
        "has no network 172.16.0.0/12",
    )  # fmt: skip
    assert networks(store) == "10.0.0.0/8"
