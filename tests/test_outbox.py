"""The outbox (smsc.store.outbox) on a real SQLite store: claim by account, oldest first,
expiry, done, retry, and what a restart gives back."""

import pytest
from sqlalchemy import insert, select

from smsc.store import nodes, outbox, schema
from smsc.store.db import NODE, writing

NOW = 1_767_225_600.0


@pytest.fixture
def accounts(engine):
    with writing(engine) as conn:
        return [
            conn.execute(
                insert(schema.accounts).values(
                    system_id=name,
                    password_hash="-",
                    max_binds=1,
                    tps=0,
                    enabled=True,
                    created_at=NOW,
                )
            ).inserted_primary_key[0]
            for name in ("acme", "globex", "initech")
        ]


def add(engine, account_id: int, **values) -> int:
    row = dict(
        account_id=account_id,
        message_id=None,
        source_ton=1,
        source_npi=1,
        source="33612345678",
        destination="ACME",
        esm_class=0x04,
        data_coding=0,
        body=b"id:1 stat:DELIVRD",
        tlvs=b"",
        state=outbox.PENDING,
        attempts=0,
        created_at=NOW,
        due_at=NOW,
        expires_at=NOW + 3600,
    )
    row.update(values)
    with writing(engine) as conn:
        return conn.execute(insert(schema.outbox).values(**row)).inserted_primary_key[0]


NODE_ID = 7  # the node the claims here are made for


def run(engine, fn, *args):
    with writing(engine) as conn:
        conn.info[NODE] = NODE_ID
        return fn(conn, *args)


def release(engine, now) -> int:
    """What a node starting again under its name does: its deliveries in flight go back."""
    return run(engine, nodes.release, [NODE_ID], now)[1]


def rows(engine) -> dict[int, tuple]:
    with engine.connect() as conn:
        o = schema.outbox
        query = select(o.c.id, o.c.state, o.c.attempts, o.c.due_at)
        return {r.id: (r.state, r.attempts, r.due_at) for r in conn.execute(query)}


def claim(engine, account_ids, now=NOW, limit=100) -> list[int]:
    return [item.id for item in run(engine, outbox.claim, account_ids, now, limit)]


def test_claim_takes_the_accounts_rows_oldest_first_up_to_the_limit(engine, accounts):
    acme, globex, initech = accounts
    ids = [add(engine, owner) for owner in (globex, acme, initech, acme, globex, acme)]
    assert claim(engine, [acme, globex], limit=4) == [ids[0], ids[1], ids[3], ids[4]]
    assert claim(engine, [acme, globex]) == [ids[5]]
    assert claim(engine, [acme, globex]) == []
    assert rows(engine)[ids[2]] == (outbox.PENDING, 0, NOW)  # initech's: not asked for
    assert rows(engine)[ids[0]] == (outbox.SENDING, 1, NOW)
    assert claim(engine, []) == []


def test_claim_gives_the_fields_of_a_deliver_sm(engine, accounts):
    acme = accounts[0]
    row = add(
        engine,
        acme,
        source_ton=2,
        source_npi=3,
        source="336",
        destination="ACME",
        esm_class=0x04,
        data_coding=8,
        body=b"\x00a",
        tlvs=b"\x04\x27\x00\x01\x02",
    )
    (item,) = run(engine, outbox.claim, [acme], NOW, 10)
    assert item == outbox.Item(
        row, acme, 2, 3, "336", "ACME", 0x04, 8, b"\x00a", b"\x04\x27\x00\x01\x02"
    )


def test_claim_waits_for_the_due_time(engine, accounts):
    acme = accounts[0]
    later = add(engine, acme, due_at=NOW + 30)
    now = add(engine, acme, due_at=NOW)
    assert claim(engine, [acme]) == [now]
    assert claim(engine, [acme], now=NOW + 29.9) == []
    assert claim(engine, [acme], now=NOW + 30) == [later]


def test_claim_expires_rows_past_their_retention_for_every_account(engine, accounts):
    acme, globex, _ = accounts
    old = add(engine, acme, expires_at=NOW + 10)
    young = add(engine, acme, expires_at=NOW + 3600)
    others = add(engine, globex, expires_at=NOW + 5, due_at=NOW + 100)
    sending = add(engine, acme, state=outbox.SENDING, expires_at=NOW)
    assert claim(engine, [acme], now=NOW + 10) == [young]
    states = {i: r[0] for i, r in rows(engine).items()}
    assert states == {
        old: outbox.EXPIRED,
        young: outbox.SENDING,
        others: outbox.EXPIRED,  # another account's, not due yet: expired all the same
        sending: outbox.SENDING,  # on its way: its answer decides
    }
    run(engine, outbox.retry, [sending], NOW + 10)
    assert claim(engine, [acme], now=NOW + 10) == []
    assert rows(engine)[sending][0] == outbox.EXPIRED


def test_done_rows_are_never_claimed_again(engine, accounts):
    acme = accounts[0]
    a, b = add(engine, acme), add(engine, acme)
    assert claim(engine, [acme]) == [a, b]
    run(engine, outbox.done, [a])
    assert rows(engine)[a] == (outbox.DONE, 1, NOW)
    release(engine, NOW + 1)
    assert claim(engine, [acme], now=NOW + 1) == [b]


def test_retry_puts_sending_rows_back_for_later(engine, accounts):
    acme = accounts[0]
    a, b, c = add(engine, acme), add(engine, acme), add(engine, acme)
    claim(engine, [acme], limit=2)
    run(engine, outbox.done, [b])
    run(engine, outbox.retry, [a, b, c], NOW + 30)
    assert rows(engine) == {
        a: (outbox.PENDING, 1, NOW + 30),
        b: (outbox.DONE, 1, NOW),  # answered already: stays done
        c: (outbox.PENDING, 0, NOW),  # never claimed: untouched
    }
    assert claim(engine, [acme], now=NOW + 29) == [c]
    assert claim(engine, [acme], now=NOW + 30) == [a]
    assert rows(engine)[a] == (outbox.SENDING, 2, NOW + 30)


def test_a_node_released_gives_back_what_it_was_sending(engine, accounts):
    acme = accounts[0]
    a, b, c = add(engine, acme), add(engine, acme), add(engine, acme, due_at=NOW + 50)
    claim(engine, [acme])
    run(engine, outbox.done, [b])
    assert run(engine, nodes.release, [NODE_ID + 1], NOW + 5) == (0, 0)  # another node's
    assert release(engine, NOW + 5) == 1
    assert rows(engine) == {
        a: (outbox.PENDING, 1, NOW + 5),
        b: (outbox.DONE, 1, NOW),
        c: (outbox.PENDING, 0, NOW + 50),
    }
    assert claim(engine, [acme], now=NOW + 5) == [a]
