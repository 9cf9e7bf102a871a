"""Credit: charges at accept in the writer's transaction, refunds, repricing, concurrency.

Messages go in through the real writer (the Harness of test_writer), so that every charge is
made the way the submit path makes it; refunds through the queue moves that settle messages.
"""

import threading

import pytest
from sqlalchemy import select, update
from stores import PG_URL
from test_queue import Maker, add_account, add_message, claim
from test_writer import NOW, TIMEOUT, Harness, row

from smsc.protocol.constants import Status
from smsc.store import credit, db, messages, optouts, queue, schema
from smsc.store.credit import MILLI
from smsc.store.messages import State
from smsc.store.queue import Settle

NO = Status.RNOCREDIT
A, B, C = "33600000001", "33600000002", "33600000003"


def set_account(engine, account_id, **values):
    with db.writing(engine) as conn:
        conn.execute(
            update(schema.accounts).where(schema.accounts.c.id == account_id).values(**values)
        )


def top_up(engine, account_id, credits):
    with db.writing(engine) as conn:
        return credit.top_up(conn, account_id, credits * MILLI, NOW)


def balance(engine, account_id) -> int:
    with engine.connect() as conn:
        balance = conn.execute(
            select(schema.accounts.c.balance).where(schema.accounts.c.id == account_id)
        ).scalar()
        assert balance == credit.ledger_sum(conn, account_id)  # always, whatever happened
        return balance


def movements(engine, account_id) -> list[tuple]:
    with engine.connect() as conn:
        return [
            (m["kind"], m["amount"], m["message_id"], m["note"])
            for m in credit.history(conn, account_id)
        ]


@pytest.fixture
def account(engine):
    with db.writing(engine) as conn:
        return add_account(conn)


@pytest.fixture
def prepaid(engine, account):
    set_account(engine, account, prepaid=True)
    top_up(engine, account, 3)
    return account


@pytest.fixture
def harness(engine, account):
    h = Harness(engine)
    h.writer.start()
    yield h
    h.stop()


def submit(harness, account_id, *numbers, parts=1, hashes=None):
    got = []
    rows = [row(account_id, destination=n) for n in numbers]
    harness.writer.insert(rows, got.append, hashes, parts)
    harness.run_batch()
    return got[0]


def test_a_prepaid_account_is_charged_until_its_balance_is_spent(engine, prepaid, harness):
    assert [submit(harness, prepaid, A) for _ in range(4)] == [[1], [2], [3], [NO]]
    assert balance(engine, prepaid) == 0
    assert movements(engine, prepaid) == [
        ("topup", 3000, None, ""),
        ("charge", -1000, 1, ""),
        ("charge", -1000, 2, ""),
        ("charge", -1000, 3, ""),
    ]
    assert [r.id for r in harness.stored()] == [1, 2, 3]  # nothing of the refused is stored


def test_a_submit_multi_is_refused_destination_by_destination(engine, prepaid, harness):
    assert submit(harness, prepaid, A, B, C, "33600000004") == [1, 2, 3, NO]
    assert balance(engine, prepaid) == 0
    assert [(r.id, r.multi_id) for r in harness.stored()] == [(1, 1), (2, 1), (3, 1)]


def test_opted_out_destinations_cost_nothing(engine, prepaid, harness):
    key = b"k" * 32
    with db.writing(engine) as conn:
        optouts.add(conn, prepaid, [optouts.digest(key, A)], "stop", NOW)
    hashes = [optouts.digest(key, n) for n in (A, B, C, "33600000004")]
    got = submit(harness, prepaid, A, B, C, "33600000004", hashes=hashes)
    assert got == [Status.ROPTEDOUT, 1, 2, 3]
    assert balance(engine, prepaid) == 0


def test_parts_times_the_longest_matching_prefix(engine, prepaid, harness):
    top_up(engine, prepaid, 97)  # 100 credits
    with db.writing(engine) as conn:
        credit.set_price(conn, "", 500)
        credit.set_price(conn, "336", 2000)
        credit.set_price(conn, "3360000000", 7250)
    submit(harness, prepaid, A, "33612345678", "447700900000", parts=3)
    charges = [m[1] for m in movements(engine, prepaid) if m[0] == "charge"]
    assert charges == [-3 * 7250, -3 * 2000, -3 * 500]
    assert balance(engine, prepaid) == 100_000 - 29_250


def test_without_a_tariff_a_part_costs_one_credit():
    assert credit.Tariff({}).price(A) == MILLI
    assert credit.Tariff({"33": 0}).price(A) == 0  # a free prefix is a price too
    assert credit.Tariff({"33": 0}).price("447700900000") == MILLI


def test_a_postpaid_account_is_never_refused_and_counts_its_use(engine, account, harness):
    assert submit(harness, account, A, B, parts=2) == [1, 2]
    assert balance(engine, account) == -4000
    assert [m[:3] for m in movements(engine, account)] == [
        ("charge", -2000, 1),
        ("charge", -2000, 2),
    ]


def test_the_low_balance_threshold_is_reported_once_when_crossed(engine, prepaid, harness):
    set_account(engine, prepaid, low_balance=1500)
    crossed = []
    harness.writer.low_balance = crossed.append
    submit(harness, prepaid, A)  # 3 → 2: above
    assert crossed == []
    submit(harness, prepaid, A)  # 2 → 1: below
    assert crossed == [[("acme", 1000, 1500)]]
    submit(harness, prepaid, A)  # 1 → 0: below already
    assert len(crossed) == 1


def test_charges_in_a_batch_with_other_jobs(engine, prepaid, harness):
    """A batch with a job that is not a submit runs on the other path: same charges, and a
    refund job between two submits frees credit for the second."""
    first, second = [], []
    harness.writer.insert([row(prepaid, destination=A)] * 2, first.append)
    harness.writer.insert([row(prepaid, destination=B)], first.append)
    harness.writer.call(messages.cancel, prepaid, NOW, message_id=3)
    harness.writer.insert([row(prepaid, destination=C)] * 2, second.append)
    harness.run_batch()
    assert (first, second) == ([[1, 2], [3]], [[4, NO]])
    assert balance(engine, prepaid) == 0


# -- refunds -----------------------------------------------------------------------------------


def test_a_cancelled_message_is_refunded_once(engine, prepaid, harness):
    submit(harness, prepaid, A, B)  # a submit_multi: id 1
    with db.writing(engine) as conn:
        assert messages.cancel(conn, prepaid, NOW, message_id=1) == 2
        assert messages.cancel(conn, prepaid, NOW, message_id=1) == 0
    assert balance(engine, prepaid) == 3000
    assert [m for m in movements(engine, prepaid) if m[0] == "refund"] == [
        ("refund", 1000, 1, "cancelled"),
        ("refund", 1000, 2, "cancelled"),
    ]


@pytest.mark.parametrize("policy", [True, False])
def test_expired_unsent_is_refunded_by_policy(engine, prepaid, harness, policy):
    set_account(engine, prepaid, refund_expired=policy)
    submit(harness, prepaid, A)
    later = Settle(NOW + 7200, 3600.0, Maker())  # past its validity
    assert claim(engine, now=later.now) == []
    assert balance(engine, prepaid) == (3000 if policy else 2000)


@pytest.mark.parametrize("policy", [True, False])
def test_rejected_by_the_carrier_is_refunded_by_policy(engine, prepaid, harness, policy):
    set_account(engine, prepaid, refund_rejected=policy)
    submit(harness, prepaid, A, B)
    assert len(claim(engine)) == 2
    how = Settle(NOW, 3600.0, Maker())
    with db.writing(engine) as conn:
        queue.fail(conn, [(1, "orange", 0x45)], how)
        queue.fail(conn, [(1, "orange", 0x45)], how)  # told twice: refunded once
    assert balance(engine, prepaid) == (2000 if policy else 1000)


def test_a_receipt_rejected_is_refunded_and_undeliverable_is_not(engine, prepaid, harness):
    submit(harness, prepaid, A, B)
    claim(engine)
    how = Settle(NOW, 3600.0, Maker())
    with db.writing(engine) as conn:
        queue.record_parts(conn, [(1, 1, "orange", "a1"), (2, 1, "orange", "a2")], NOW)
        queue.mark_sent(conn, [(1, "orange"), (2, "orange")], how)
        receipts = [
            ("orange", ("a1",), A, State.REJECTED, 0),
            ("orange", ("a2",), B, State.UNDELIVERABLE, 0),
        ]
        queue.record_receipts(conn, receipts, how)
    assert [m[2] for m in movements(engine, prepaid) if m[0] == "refund"] == [1]


def test_an_opt_out_found_at_sending_time_is_always_refunded(engine, prepaid, harness):
    set_account(engine, prepaid, refund_rejected=False, refund_expired=False)
    submit(harness, prepaid, A)
    key = b"k" * 32
    with db.writing(engine) as conn:
        optouts.add(conn, prepaid, [optouts.digest(key, A)], "stop", NOW)
        how = Settle(NOW, 3600.0, Maker(), optout_key=key)
        assert queue.claim(conn, NOW, 10, lambda c, n: {}, how) == []
    assert balance(engine, prepaid) == 3000


# -- replace_sm ----------------------------------------------------------------------------------


def replace(engine, account_id, body, message_id=1):
    with db.writing(engine) as conn:
        return messages.replace(
            conn,
            account_id,
            message_id,
            NOW,
            source="",
            body=body,
            registered_delivery=0,
            due_at=None,
            expires_at=None,
            check_body=lambda *_: 0,
        )


def test_a_longer_text_costs_the_difference_and_a_shorter_gives_it_back(engine, prepaid, harness):
    submit(harness, prepaid, A)
    assert replace(engine, prepaid, b"x" * 300) == 0  # 2 parts of 153 septets
    assert balance(engine, prepaid) == 1000
    assert replace(engine, prepaid, b"x" * 500) == NO  # 4 parts: 2 more, 1 left
    assert replace(engine, prepaid, b"short") == 0
    assert balance(engine, prepaid) == 2000
    with db.writing(engine) as conn:  # cancelled: what it cost in all comes back
        messages.cancel(conn, prepaid, NOW, message_id=1)
    assert balance(engine, prepaid) == 3000
    assert [m[:2] for m in movements(engine, prepaid)][1:] == [
        ("charge", -1000),
        ("adjust", -1000),
        ("adjust", 1000),
        ("refund", 1000),
    ]


def test_a_message_stored_before_charges_existed_is_not_repriced(engine, account, harness):
    with db.writing(engine) as conn:
        add_message(conn, account, 1)
    assert replace(engine, account, b"x" * 500) == 0
    assert movements(engine, account) == []


# -- concurrency -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nodes",
    [
        1,
        pytest.param(2, marks=pytest.mark.skipif(not PG_URL, reason="nodes share PostgreSQL")),
    ],
)
def test_concurrent_submits_never_overdraw(engine, db_url, prepaid, nodes):
    """Two threads submit for one prepaid account at once, more than it can pay, to one
    writer (two binds on a node) or to a writer each on their own connections (two nodes):
    exactly what it can pay is accepted."""
    top_up(engine, prepaid, 147)  # 150 credits
    engines = [engine] + [db.make_engine(db_url) for _ in range(nodes - 1)]
    writers = [Harness(e) for e in engines]
    results: list[list] = [[], []]
    for w in writers:
        w.writer.start()

    def send(i):
        for _ in range(200):
            writers[i % nodes].writer.insert([row(prepaid, destination=A)], results[i].append)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    for w in writers:
        while sum(len(got) for got in results[writers.index(w) :: nodes]) < 400 // nodes:
            w.run_batch()
    for w in writers:
        w.stop()
    for e in engines[1:]:
        e.dispose()
    answers = [ids for got in results for ids in got]
    accepted = [i for ids in answers for i in ids if i != NO]
    # Said whole when it fails: this test failed once in CI (149), and never again since.
    seen = (len(accepted), len(set(accepted)), answers.count([NO]), balance(engine, prepaid))
    assert seen == (150, 150, 250, 0), f"accepted, distinct, refused, balance: {seen}"
