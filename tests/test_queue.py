"""The queue's moves (smsc.store.queue) on a real SQLite store: claim, put back, parts, sent,
refused, and settling messages from carriers' receipts (with the client's receipt queued in
the outbox when it asked for one)."""

import pytest
from sqlalchemy import insert, select

from smsc.inbound.handler import client_receipt
from smsc.store import nodes, optouts, queue, schema
from smsc.store.db import NODE, writing
from smsc.store.messages import State
from smsc.store.queue import Settle

NOW = 1_767_225_600.0
RETENTION = 3600.0
DEST = "33612345678"


class Maker:
    """A `ReceiptMaker` that remembers what it was asked."""

    def __init__(self):
        self.calls = []

    def __call__(self, message, state, error, parts, now):
        self.calls.append((message.id, State(state), error, parts))
        return f"receipt {message.id} {state}".encode(), b""


@pytest.fixture
def account(engine):
    with writing(engine) as conn:
        return add_account(conn)


def add_account(conn, system_id="acme") -> int:
    values = dict(
        system_id=system_id, password_hash="-", max_binds=1, tps=0, enabled=True, created_at=NOW
    )
    return conn.execute(insert(schema.accounts).values(**values)).inserted_primary_key[0]


def add_message(conn, account_id: int, message_id: int, **values) -> None:
    row = dict(
        id=message_id,
        account_id=account_id,
        service_type="",
        source_ton=5,
        source_npi=0,
        source="ACME",
        destination=DEST,
        esm_class=0,
        protocol_id=0,
        priority=0,
        registered_delivery=1,
        data_coding=0,
        body=b"hello",
        tlvs=b"",
        submitted_at=NOW - 60,
        due_at=NOW,
        expires_at=NOW + 3600,
        state=State.ACCEPTED,
        updated_at=NOW - 60,
        multi_id=None,
    )
    row.update(values)
    conn.execute(insert(schema.messages).values(**row))


def run(engine, fn, *args):
    with writing(engine) as conn:
        return fn(conn, *args)


def message(engine, message_id: int):
    with engine.connect() as conn:
        m = schema.messages
        return conn.execute(select(m).where(m.c.id == message_id)).one()


def parts_of(engine, message_id: int) -> list[tuple]:
    with engine.connect() as conn:
        p = schema.message_parts
        query = select(p.c.seq, p.c.carrier, p.c.carrier_id, p.c.state)
        return [tuple(r) for r in conn.execute(query.where(p.c.message_id == message_id))]


def outbox_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(schema.outbox).order_by(schema.outbox.c.id)).all()


def no_ports(conn, numbers):
    return {}


def claim(engine, limit=100, now=NOW, ported=no_ports):
    how = Settle(now, 3600.0, lambda m, state, error, parts, at: (b"receipt", b""))
    return run(engine, queue.claim, now, limit, ported, how)


def sending(engine, account, *ids, **values):
    """Messages claimed and on their way (SENDING), with their parts forgotten."""
    with writing(engine) as conn:
        for i in ids:
            add_message(conn, account, i, **values)
    assert [d.id for d in claim(engine)] == list(ids)


def sent(engine, ids_parts: dict[int, list[str]], how: Settle, carrier="orange") -> None:
    """Record the parts (carrier ids) of SENDING messages, then mark them sent."""
    parts = [
        (m, seq, carrier, cid)
        for m, cids in ids_parts.items()
        for seq, cid in enumerate(cids, start=1)
    ]
    run(engine, queue.record_parts, parts, how.now)
    run(engine, queue.mark_sent, [(m, carrier) for m in ids_parts], how)


def receipt(engine, how, *receipts, number=""):
    """Receipts as (carrier, id candidates, state, error), about `number`."""
    work = [(carrier, ids, number, state, error) for carrier, ids, state, error in receipts]
    return run(engine, queue.record_receipts, work, how)


@pytest.fixture
def maker():
    return Maker()


@pytest.fixture
def how(maker):
    return Settle(NOW, RETENTION, maker)


# -- a node's claims ---------------------------------------------------------------------------


def test_a_claim_records_its_node_and_a_release_queues_them_again(engine, account):
    with writing(engine) as conn:
        add_message(conn, account, 1, due_at=NOW - 100)
        add_message(conn, account, 2, state=State.ENROUTE, node_id=3)
        add_message(conn, account, 3, due_at=NOW - 50)
        add_message(conn, account, 4, state=State.SENDING, node_id=4)  # another node's
        add_message(conn, account, 5, due_at=NOW + 500)
        conn.info[NODE] = 3
        how = Settle(NOW, 3600.0, lambda *_: (b"receipt", b""))
        assert [d.id for d in queue.claim(conn, NOW, 10, no_ports, how)] == [1, 3]
    assert [message(engine, i).node_id for i in (1, 3)] == [3, 3]
    assert run(engine, nodes.release, [3], NOW + 1) == (2, 0)
    assert [(message(engine, i).state, message(engine, i).due_at) for i in range(1, 6)] == [
        (State.ACCEPTED, NOW + 1),
        (State.ENROUTE, NOW),
        (State.ACCEPTED, NOW + 1),
        (State.SENDING, NOW),
        (State.ACCEPTED, NOW + 500),
    ]


def test_a_node_taken_for_dead_leaves_its_claims_to_the_node_that_took_them(engine, account):
    how = Settle(NOW, 3600.0, lambda *_: (b"receipt", b""))
    with writing(engine) as conn:
        add_message(conn, account, 1)
        add_message(conn, account, 2)
        conn.info[NODE] = 3
        assert [d.id for d in queue.claim(conn, NOW, 10, no_ports, how)] == [1, 2]
    run(engine, nodes.release, [3], NOW + 1)  # node 3 missed its heartbeats
    with writing(engine) as conn:
        conn.info[NODE] = 4
        assert [d.id for d in queue.claim(conn, NOW + 1, 10, no_ports, how)] == [1, 2]
    with writing(engine) as conn:  # node 3 comes back with what it did meanwhile
        conn.info[NODE] = 3
        queue.record_taken(conn, [(1, 1, "orange", "a1")], [(1, "orange")], how)
        queue.put_back(conn, [2], NOW + 60, NOW + 1)
        queue.fail(conn, [(2, "orange", 0x45)], how)
    assert [(message(engine, i).state, message(engine, i).node_id) for i in (1, 2)] == [
        (State.SENDING, 4),
        (State.SENDING, 4),
    ]
    assert parts_of(engine, 1) == []  # node 4 records its own


# -- claim -----------------------------------------------------------------------------------


def test_claim_takes_due_messages_by_due_time_then_id_up_to_the_limit(engine, account):
    with writing(engine) as conn:
        for message_id, due in [(1, 30), (2, 10), (3, 10), (4, 20), (5, 41), (6, 5)]:
            add_message(conn, account, message_id, due_at=NOW + due)
    first = claim(engine, limit=3, now=NOW + 40)
    assert [d.id for d in first] == [6, 2, 3]
    assert [d.id for d in claim(engine, limit=3, now=NOW + 40)] == [4, 1]  # 5 is not due
    assert claim(engine, now=NOW + 40) == []
    assert [d.id for d in claim(engine, now=NOW + 41)] == [5]


def test_claim_marks_sending_and_counts_the_attempt(engine, account):
    with writing(engine) as conn:
        add_message(
            conn,
            account,
            1,
            body=b"text",
            registered_delivery=2,
            source="36000",
            esm_class=0x40,
            data_coding=8,
            tlvs=b"\x02\x04\x00\x02\x00\x07",
        )
    (due,) = claim(engine, now=NOW + 5)
    assert (due.id, due.account_id, due.source, due.destination, due.body, due.tlvs) == (
        1,
        account,
        "36000",
        DEST,
        b"text",
        b"\x02\x04\x00\x02\x00\x07",
    )
    assert (due.registered_delivery, due.esm_class, due.data_coding, due.due_at) == (
        2,
        0x40,
        8,
        NOW,
    )
    assert due.ported_to is None
    row = message(engine, 1)
    assert (row.state, row.attempts, row.updated_at) == (State.SENDING, 1, NOW + 5)


def test_claim_takes_only_accepted_messages(engine, account):
    with writing(engine) as conn:
        for message_id, state in enumerate(State, start=1):
            add_message(conn, account, message_id, state=state)
    assert [d.id for d in claim(engine)] == [1]  # ACCEPTED is the first state


def test_claim_forgets_the_parts_of_an_earlier_attempt(engine, account, how):
    sending(engine, account, 1, 2)
    run(engine, queue.record_parts, [(1, 1, "orange", "a1"), (2, 1, "orange", "b1")], NOW)
    run(engine, queue.put_back, [1], NOW, NOW)
    (again,) = claim(engine)
    assert again.id == 1
    assert message(engine, 1).attempts == 2
    assert parts_of(engine, 1) == []
    assert parts_of(engine, 2) == [(1, "orange", "b1", State.ENROUTE)]  # not claimed again


def test_claim_asks_the_portability_table_once_per_batch(engine, account):
    asked = []

    def ported(conn, numbers):
        asked.append(sorted(numbers))
        return {"33600000002": "sfr"}

    with writing(engine) as conn:
        add_message(conn, account, 1, destination="33600000001")
        add_message(conn, account, 2, destination="33600000002")
        add_message(conn, account, 3, destination="33600000001")
    due = claim(engine, ported=ported)
    assert asked == [["33600000001", "33600000002"]]
    assert [(d.id, d.ported_to) for d in due] == [(1, None), (2, "sfr"), (3, None)]
    assert claim(engine, ported=ported) == []
    assert len(asked) == 1  # nothing claimed, nothing asked


# -- put_back --------------------------------------------------------------------------------


def test_put_back_requeues_only_sending_messages(engine, account, how):
    sending(engine, account, 1, 2)
    sent(engine, {2: ["x"]}, how)
    run(engine, queue.put_back, [1, 2], NOW + 10, NOW + 1)
    assert (message(engine, 1).state, message(engine, 1).due_at) == (State.ACCEPTED, NOW + 10)
    assert message(engine, 2).state == State.ENROUTE
    assert claim(engine, now=NOW + 9) == []
    assert [d.id for d in claim(engine, now=NOW + 10)] == [1]


# -- record_parts, mark_sent -----------------------------------------------------------------


def test_parts_and_sent_messages_wait_for_receipts(engine, account, how, maker):
    sending(engine, account, 1)
    sent(engine, {1: ["abc", "abd"]}, how, carrier="sfr")
    row = message(engine, 1)
    assert (row.state, row.carrier) == (State.ENROUTE, "sfr")
    assert parts_of(engine, 1) == [
        (1, "sfr", "abc", State.ENROUTE),
        (2, "sfr", "abd", State.ENROUTE),
    ]
    assert maker.calls == [] and outbox_rows(engine) == []


def test_mark_sent_leaves_a_message_that_is_no_longer_sending(engine, account, how):
    sending(engine, account, 1)
    run(engine, queue.put_back, [1], NOW, NOW)
    run(engine, queue.mark_sent, [(1, "orange")], how)
    assert (message(engine, 1).state, message(engine, 1).carrier) == (State.ACCEPTED, None)


def test_mark_sent_settles_a_message_whose_receipts_came_first(engine, account, how, maker):
    sending(engine, account, 1, 2)
    run(engine, queue.record_parts, [(1, 1, "orange", "a"), (2, 1, "orange", "b")], NOW)
    assert receipt(engine, how, ("orange", ("a",), State.DELIVERED, 0)) == [True]
    assert message(engine, 1).state == State.SENDING  # not settled before it is sent
    run(engine, queue.mark_sent, [(1, "orange"), (2, "orange")], how)
    assert message(engine, 1).state == State.DELIVERED
    assert message(engine, 2).state == State.ENROUTE
    assert maker.calls == [(1, State.DELIVERED, 0, 1)]


# -- fail ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("registered", "receipts"), [(0, 0), (1, 1), (2, 1), (3, 0)])
def test_fail_rejects_with_the_status_and_a_receipt_when_asked(
    engine, account, how, maker, registered, receipts
):
    sending(engine, account, 1, registered_delivery=registered)
    run(engine, queue.fail, [(1, "bouygues", 0x45)], how)
    row = message(engine, 1)
    assert (row.state, row.carrier, row.error) == (State.REJECTED, "bouygues", 0x45)
    assert maker.calls == [(1, State.REJECTED, 0x45, 1)] * receipts
    assert len(outbox_rows(engine)) == receipts


def test_fail_leaves_a_message_that_is_no_longer_sending(engine, account, how, maker):
    sending(engine, account, 1)
    sent(engine, {1: ["a"]}, how)
    run(engine, queue.fail, [(1, "orange", 0x45)], how)
    assert (message(engine, 1).state, message(engine, 1).error) == (State.ENROUTE, None)
    assert maker.calls == []


# -- record_receipts -------------------------------------------------------------------------


def test_receipt_settles_a_message_and_queues_the_clients_receipt(engine, account, how, maker):
    sending(engine, account, 1, source="ACME", destination=DEST)
    sent(engine, {1: ["1f"]}, how)
    later = Settle(NOW + 30, RETENTION, maker)
    assert receipt(engine, later, ("orange", ("1f",), State.DELIVERED, 0)) == [True]
    row = message(engine, 1)
    assert (row.state, row.updated_at) == (State.DELIVERED, NOW + 30)
    assert parts_of(engine, 1) == [(1, "orange", "1f", State.DELIVERED)]
    assert maker.calls == [(1, State.DELIVERED, 0, 1)]
    (box,) = outbox_rows(engine)
    assert (box.account_id, box.message_id, box.source, box.destination) == (
        account,
        1,
        DEST,
        "ACME",
    )
    assert (box.source_ton, box.source_npi, box.esm_class, box.data_coding) == (1, 1, 0x04, 0)
    assert (box.body, box.state, box.attempts) == (b"receipt 1 DELIVERED", "PENDING", 0)
    assert (box.created_at, box.due_at, box.expires_at) == (NOW + 30, NOW + 30, NOW + 30 + 3600)


def test_unmatched_receipts_are_false_and_change_nothing(engine, account, how, maker):
    sending(engine, account, 1)
    sent(engine, {1: ["abc"]}, how)
    got = receipt(
        engine,
        how,
        ("orange", ("abd",), State.DELIVERED, 0),
        ("sfr", ("abc",), State.DELIVERED, 0),  # the id of another carrier
        ("orange", (), State.DELIVERED, 0),
        ("orange", ("abc",), State.DELIVERED, 0),
    )
    assert got == [False, False, False, True]
    assert maker.calls == [(1, State.DELIVERED, 0, 1)]


def test_the_exact_id_wins_over_a_converted_form(engine, account, how, maker):
    # "10" may be the id itself, or ten written in decimal (stored "a"): the exact form first.
    sending(engine, account, 1, 2)
    sent(engine, {1: ["a"], 2: ["10"]}, how)
    assert receipt(engine, how, ("orange", ("10", "a", "16"), State.DELIVERED, 0)) == [True]
    assert (message(engine, 1).state, message(engine, 2).state) == (
        State.ENROUTE,
        State.DELIVERED,
    )
    # With no exact match, a converted form matches.
    assert receipt(engine, how, ("orange", ("12", "c", "18"), State.DELIVERED, 0)) == [False]
    sending(engine, account, 3)
    sent(engine, {3: ["c"]}, how)
    assert receipt(engine, how, ("orange", ("12", "c", "18"), State.DELIVERED, 0)) == [True]
    assert message(engine, 3).state == State.DELIVERED


def test_the_number_a_receipt_is_about_settles_an_ambiguous_id(engine, account, how, maker):
    """Receipt "16" may be message 1's (hex 0x10 written in decimal) or message 2's (hex 0x16
    as is): both wait, and the receipt's source, the subscriber, says which."""
    sending(engine, account, 1, destination="33600000001")
    sending(engine, account, 2, destination="33600000002")
    sent(engine, {1: ["10"], 2: ["16"]}, how)
    candidates = ("16", "10", "22")
    got = receipt(engine, how, ("orange", candidates, State.DELIVERED, 0), number="33600000001")
    assert got == [True]
    assert (message(engine, 1).state, message(engine, 2).state) == (
        State.DELIVERED,
        State.ENROUTE,
    )


def test_a_waiting_part_wins_over_a_settled_one(engine, account, how, maker):
    sending(engine, account, 1, 2)
    sent(engine, {1: ["16"], 2: ["10"]}, how)
    assert receipt(engine, how, ("orange", ("16",), State.DELIVERED, 0)) == [True]  # 1 settles
    # Later, "16" (decimal for 0x10) for message 2: message 1's settled part does not take it.
    assert receipt(engine, how, ("orange", ("16", "10", "22"), State.DELIVERED, 0)) == [True]
    assert message(engine, 2).state == State.DELIVERED


def test_a_converted_form_never_takes_a_settled_part_or_another_numbers(engine, account, how):
    """On several nodes a receipt can come before the sender recorded the carrier's id: "106"
    then is no id of ours yet, and message 1's settled "6a" (0x6a = 106) must not take it,
    nor message 3's waiting "6a" sent to another number."""
    sending(engine, account, 1, destination="33600010001")
    sent(engine, {1: ["6a"]}, how, carrier="alpha")
    assert receipt(engine, how, ("alpha", ("6a", "106"), State.DELIVERED, 0)) == [True]
    sending(engine, account, 2, destination="33600010002")
    late = ("alpha", ("106", "262", "6a"), State.DELIVERED, 0)  # message 2's, not yet recorded
    assert receipt(engine, how, late, number="33600010002") == [False]
    sending(engine, account, 3, destination="33600010003")
    sent(engine, {3: ["6a"]}, how, carrier="alpha")
    assert receipt(engine, how, late, number="33600010002") == [False]
    sent(engine, {2: ["106"]}, how, carrier="alpha")  # the sender's record commits
    assert receipt(engine, how, late, number="33600010002") == [True]
    assert [message(engine, i).state for i in (1, 2, 3)] == [
        State.DELIVERED,
        State.DELIVERED,
        State.ENROUTE,
    ]


def test_the_newest_part_with_an_id_wins(engine, account, maker):
    # A carrier that reuses its ids (a restart): the receipt is for the part sent last.
    sending(engine, account, 1)
    sent(engine, {1: ["7"]}, Settle(NOW, RETENTION, maker))
    sending(engine, account, 2)
    sent(engine, {2: ["7"]}, Settle(NOW + 100, RETENTION, maker))
    sending(engine, account, 3)
    sent(engine, {3: ["7"]}, Settle(NOW + 50, RETENTION, maker))
    later = Settle(NOW + 200, RETENTION, maker)
    assert receipt(engine, later, ("orange", ("7",), State.DELIVERED, 0)) == [True]
    assert [message(engine, i).state for i in (1, 2, 3)] == [
        State.ENROUTE,
        State.DELIVERED,
        State.ENROUTE,
    ]


@pytest.mark.parametrize("intermediate", [State.ENROUTE, State.ACCEPTED])
def test_an_intermediate_receipt_does_not_settle(engine, account, how, maker, intermediate):
    sending(engine, account, 1)
    sent(engine, {1: ["a"]}, how)
    assert receipt(engine, how, ("orange", ("a",), intermediate, 0)) == [True]
    assert message(engine, 1).state == State.ENROUTE
    assert parts_of(engine, 1)[0][3] == intermediate
    assert maker.calls == []
    assert receipt(engine, how, ("orange", ("a",), State.UNDELIVERABLE, 34)) == [True]
    assert (message(engine, 1).state, message(engine, 1).error) == (State.UNDELIVERABLE, 34)
    assert maker.calls == [(1, State.UNDELIVERABLE, 34, 1)]


def test_a_late_intermediate_receipt_does_not_reopen_a_final_part(engine, account, how, maker):
    sending(engine, account, 1)
    sent(engine, {1: ["a", "b"]}, how)
    receipt(engine, how, ("orange", ("a",), State.DELIVERED, 0))
    receipt(engine, how, ("orange", ("a",), State.ENROUTE, 0))  # out of order
    assert parts_of(engine, 1)[0][3] == State.DELIVERED
    receipt(engine, how, ("orange", ("b",), State.DELIVERED, 0))
    assert message(engine, 1).state == State.DELIVERED
    assert maker.calls == [(1, State.DELIVERED, 0, 2)]


def test_a_long_message_settles_when_every_part_is_final(engine, account, how, maker):
    sending(engine, account, 1)
    sent(engine, {1: ["p1", "p2", "p3"]}, how)
    for cid in ("p3", "p1"):
        receipt(engine, how, ("orange", (cid,), State.DELIVERED, 0))
        assert message(engine, 1).state == State.ENROUTE
    assert maker.calls == []
    receipt(engine, how, ("orange", ("p2",), State.DELIVERED, 0))
    assert message(engine, 1).state == State.DELIVERED
    assert maker.calls == [(1, State.DELIVERED, 0, 3)]  # one receipt, for the three parts
    assert len(outbox_rows(engine)) == 1


@pytest.mark.parametrize(
    ("states", "final"),
    [
        ([State.DELIVERED, State.UNKNOWN], State.UNKNOWN),
        ([State.UNKNOWN, State.EXPIRED, State.DELIVERED], State.EXPIRED),
        ([State.UNDELIVERABLE, State.EXPIRED], State.UNDELIVERABLE),
        ([State.DELIVERED, State.REJECTED, State.UNDELIVERABLE], State.REJECTED),
        ([State.DELETED, State.DELIVERED], State.DELETED),
        ([State.DELIVERED, State.DELIVERED], State.DELIVERED),
    ],
)
def test_the_worst_state_of_the_parts_wins(engine, account, how, maker, states, final):
    sending(engine, account, 1)
    cids = [f"p{i}" for i in range(len(states))]
    sent(engine, {1: cids}, how)
    errors = [0 if s == State.DELIVERED else 10 + i for i, s in enumerate(states)]
    for cid, state, error in zip(cids, states, errors, strict=True):
        receipt(engine, how, ("orange", (cid,), state, error))
    assert message(engine, 1).state == final
    assert maker.calls[0][:2] == (1, final) and len(maker.calls) == 1


@pytest.mark.parametrize(
    ("registered", "state", "queued"),
    [
        (0, State.DELIVERED, False),
        (0, State.UNDELIVERABLE, False),
        (1, State.DELIVERED, True),
        (1, State.EXPIRED, True),
        (2, State.DELIVERED, False),
        (2, State.UNDELIVERABLE, True),
        (2, State.UNKNOWN, True),
        (0x11, State.DELIVERED, True),  # bits 0-1 decide; the others are SME acks
        (0x12, State.DELIVERED, False),
    ],
)
def test_registered_delivery_decides_the_clients_receipt(
    engine, account, how, maker, registered, state, queued
):
    sending(engine, account, 1, registered_delivery=registered)
    sent(engine, {1: ["a"]}, how)
    receipt(engine, how, ("orange", ("a",), state, 0))
    assert message(engine, 1).state == state  # settled whether or not a receipt goes
    assert len(outbox_rows(engine)) == int(queued)
    assert len(maker.calls) == int(queued)


def test_a_settled_message_gets_no_second_receipt(engine, account, how, maker):
    sending(engine, account, 1)
    sent(engine, {1: ["a"]}, how)
    receipt(engine, how, ("orange", ("a",), State.DELIVERED, 0))
    assert receipt(engine, how, ("orange", ("a",), State.DELIVERED, 0)) == [True]
    assert len(outbox_rows(engine)) == 1


def test_the_receipt_carries_the_id_the_client_knows(engine, account):
    # Rows 5 and 6 are one submit_multi, answered with id 5.
    how = Settle(NOW, RETENTION, client_receipt)
    sending(engine, account, 4)
    with writing(engine) as conn:
        add_message(conn, account, 5, multi_id=5, destination="33600000005")
        add_message(conn, account, 6, multi_id=5, destination="33600000006")
    claim(engine)
    sent(engine, {4: ["c4"], 5: ["c5"], 6: ["c6"]}, how)
    receipt(
        engine,
        how,
        ("orange", ("c6",), State.DELIVERED, 0),
        ("orange", ("c4",), State.DELIVERED, 0),
    )
    bodies = [(row.message_id, row.source, row.body.split()[0]) for row in outbox_rows(engine)]
    assert bodies == [(6, "33600000006", b"id:5"), (4, DEST, b"id:4")]


def test_a_failure_receipt_keeps_the_error(engine, account, how, maker):
    sending(engine, account, 1)
    sent(engine, {1: ["a", "b"]}, how)
    receipt(
        engine,
        how,
        ("orange", ("a",), State.UNDELIVERABLE, 0x0B),
        ("orange", ("b",), State.DELIVERED, 0),
    )
    assert (message(engine, 1).state, message(engine, 1).error) == (State.UNDELIVERABLE, 0x0B)
    assert maker.calls == [(1, State.UNDELIVERABLE, 0x0B, 2)]


def test_a_receipt_for_a_message_put_back_does_not_settle_it(engine, account, how, maker):
    sending(engine, account, 1)
    run(engine, queue.record_parts, [(1, 1, "orange", "a")], NOW)
    run(engine, queue.put_back, [1], NOW, NOW)
    assert receipt(engine, how, ("orange", ("a",), State.DELIVERED, 0)) == [True]
    assert message(engine, 1).state == State.ACCEPTED
    assert [d.id for d in claim(engine)] == [1]  # and it goes again in full
    assert parts_of(engine, 1) == []
    assert maker.calls == []


def test_of_parts_sent_at_the_same_time_the_later_message_wins(engine, account, how):
    sending(engine, account, 1, 2)
    sent(engine, {1: ["7"], 2: ["7"]}, how)
    assert receipt(engine, how, ("orange", ("7",), State.DELIVERED, 0)) == [True]
    assert (message(engine, 1).state, message(engine, 2).state) == (
        State.ENROUTE,
        State.DELIVERED,
    )


# -- opt-outs since accept -------------------------------------------------------------------


def test_claim_refuses_messages_whose_destination_opted_out_since(engine, account, maker):
    key = b"k" * 32
    with writing(engine) as conn:
        add_message(conn, account, 1)  # to DEST, which opts out below
        add_message(conn, account, 2, destination="33612345679")
        add_message(conn, account, 3, origin=1)  # the switch's own reply: never refused
        optouts.add(conn, account, [optouts.digest(key, DEST)], "stop", NOW)
    how = Settle(NOW, RETENTION, maker, key)
    due = run(engine, queue.claim, NOW, 100, no_ports, how)
    assert [d.id for d in due] == [2, 3]
    assert message(engine, 1).state == State.REJECTED and message(engine, 1).error == 0x401
    assert maker.calls == [(1, State.REJECTED, 0x401, 1)]  # its client asked for a receipt


# -- receipts that never came --------------------------------------------------------------


def test_a_message_whose_receipt_never_came_ends_unknown(engine, account, how, maker):
    sending(engine, account, 1, 2, 3)
    sent(engine, {1: ["a1"], 2: ["b1", "b2"], 3: ["c1"]}, how)
    receipt(engine, how, ("orange", ("b1",), State.DELIVERED, 0))  # one part of two came
    receipt(engine, how, ("orange", ("c1",), State.DELIVERED, 0))  # 3 is settled
    maker.calls.clear()
    later = Settle(NOW + 100, RETENTION, maker)
    assert run(engine, queue.time_out, NOW - 1, 100, later) == 0  # sent at NOW: not late yet
    assert run(engine, queue.time_out, NOW, 100, later) == 2
    assert (message(engine, 1).state, message(engine, 2).state) == (State.UNKNOWN, State.UNKNOWN)
    assert message(engine, 3).state == State.DELIVERED
    assert [p[3] for p in parts_of(engine, 2)] == [State.DELIVERED, State.UNKNOWN]
    # One receipt each, with the message's parts counted.
    assert maker.calls == [(1, State.UNKNOWN, 0, 1), (2, State.UNKNOWN, 0, 2)]
    assert run(engine, queue.time_out, NOW + 100, 100, later) == 0  # once only
    # The carrier's receipt, at last: matched, and the message stays as it ended.
    assert receipt(engine, later, ("orange", ("a1",), State.DELIVERED, 0)) == [True]
    assert message(engine, 1).state == State.UNKNOWN
    assert len(maker.calls) == 2


def test_the_receipt_timeout_takes_a_batch_at_most(engine, account, how, maker):
    sending(engine, account, 1, 2, 3)
    sent(engine, {1: ["a"], 2: ["b"], 3: ["c"]}, how)
    assert run(engine, queue.time_out, NOW, 2, how) == 2
    assert run(engine, queue.time_out, NOW, 2, how) == 1
    assert {message(engine, i).state for i in (1, 2, 3)} == {State.UNKNOWN}


def test_a_worse_part_wins_over_the_timeout(engine, account, how, maker):
    sending(engine, account, 1)
    sent(engine, {1: ["p1", "p2"]}, how)
    receipt(engine, how, ("orange", ("p1",), State.UNDELIVERABLE, 0x0B))
    assert run(engine, queue.time_out, NOW, 100, how) == 1
    assert message(engine, 1).state == State.UNDELIVERABLE
    assert maker.calls == [(1, State.UNDELIVERABLE, 0x0B, 2)]
