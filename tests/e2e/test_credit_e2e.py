"""Prepaid credit end to end (issue 9): the real `smsc serve` with a simulated carrier, credit
and prices set with the CLI, `smpplib` and hand-made PDUs as clients. A submit the balance does
not cover is refused with 0x403 and nothing is stored; a submit_multi is refused destination by
destination; a cancelled message gives its credit back; the balance crosses its low-balance
threshold in the log; and after it all, the balance is the ledger's sum.
"""

import pytest
from test_replies import eventually
from test_smpp import (
    CANCEL_SM,
    SUBMIT_MULTI,
    cancel_sm_body,
    read_submit_multi_resp,
    submit,
    submit_multi_body,
    submitted_id,
)

pytestmark = pytest.mark.e2e

ROK, RNOCREDIT = 0x00, 0x403
CHEAP, DEAR = "3360007", "3360008"  # prefixes at 1 and 2.5 credits a part


@pytest.fixture(scope="module")
def server(smsc_factory, free_ports):
    (port,) = free_ports(1)
    carrier = {"name": "alpha", "port": port, "prefixes": ["33600"], "simulate": True,
               "simulator": {"dlr_delay": 0.1}}  # fmt: skip
    switch = smsc_factory(config={"carriers": [carrier]}, start=False)
    switch.cli("account", "add", "payg", "--password", "paygpw", "--prepaid")
    switch.cli("account", "set", "payg", "--low-balance", "2")
    switch.cli("account", "credit", "add", "payg", "10")
    switch.cli("tariff", "set", DEAR, "2.5")
    switch.start()
    return switch


def balance(server) -> int:
    (found,) = server.query("SELECT balance FROM accounts WHERE system_id = 'payg'")
    return found[0]


def bind(smpplib_client, server):
    client = smpplib_client(server)
    assert client.bind_transceiver(system_id="payg", password="paygpw").status == ROK
    return client


def test_credit_runs_out_and_comes_back(server, smpplib_client, raw_client):
    client = bind(smpplib_client, server)
    # 10 credits: 1 + 2 parts (1 credit each) + 2.5 = 5.5 spent
    submitted_id(client, CHEAP + "0001")
    submitted_id(client, CHEAP + "0002", b"x" * 200)
    dear = submitted_id(client, DEAR + "0001")
    assert balance(server) == 4500
    # Scheduled in an hour: still waiting, so that it can be cancelled.
    later = submitted_id(client, CHEAP + "0003", schedule_delivery_time="000001000000000R")
    assert balance(server) == 3500
    assert "below its low-balance threshold" not in server.log()
    # A submit_multi: 2.5 + 1 fit, the next ones do not, each listed.
    raw = raw_client(server)
    assert raw.bind("transmitter", "payg", "paygpw").status == ROK
    destinations = [(1, 1, DEAR + "0002"), (1, 1, CHEAP + "0004"), (1, 1, DEAR + "0003"),
                    (1, 1, CHEAP + "0005")]  # fmt: skip
    answer = raw.call(SUBMIT_MULTI, submit_multi_body(destinations, b"multi"))
    assert answer.status == ROK
    multi, unsuccess = read_submit_multi_resp(answer.body)
    assert unsuccess == [(1, 1, DEAR + "0003", RNOCREDIT), (1, 1, CHEAP + "0005", RNOCREDIT)]
    assert balance(server) == 0
    eventually(lambda: "below its low-balance threshold" in server.log(), "the low-balance log")
    # Nothing more is stored, and nothing is charged for it.
    stored = server.query("SELECT COUNT(*) FROM messages")[0][0]
    assert submit(client, CHEAP + "0006").status == RNOCREDIT
    assert server.query("SELECT COUNT(*) FROM messages")[0][0] == stored
    # Cancelled while waiting: its credit comes back and pays for one more.
    assert raw.call(CANCEL_SM, cancel_sm_body(later, destination=CHEAP + "0003")).status == ROK
    assert balance(server) == 1000
    submitted_id(client, CHEAP + "0007")
    assert balance(server) == 0
    # The ledger explains every movement, and sums to the balance.
    rows = server.query(
        "SELECT kind, amount, message_id FROM ledger WHERE account_id = "
        "(SELECT id FROM accounts WHERE system_id = 'payg') ORDER BY id"
    )
    assert [(kind, amount) for kind, amount, _ in rows] == [
        ("topup", 10000),
        ("charge", -1000),
        ("charge", -2000),
        ("charge", -2500),
        ("charge", -1000),
        ("charge", -2500),
        ("charge", -1000),
        ("refund", 1000),
        ("charge", -1000),
    ]
    assert rows[3][2] == int(dear) and rows[5][2] == int(multi) and rows[7][2] == int(later)
    assert sum(amount for _, amount, _ in rows) == balance(server) == 0
    shown = server.cli("account", "credit", "show", "payg").stdout
    assert "0.000" in shown and "prepaid" in shown
