"""Accounts' senders (smsc.store.senders) on a real SQLite store: add, remove, listing, shared
short codes, and who a subscriber's reply to an address is for."""

import pytest
from test_queue import add_account, add_message, run

from smsc.store import accounts, senders
from smsc.store.db import writing

SUBSCRIBER = "33612345678"
OTHER = "33798765432"


@pytest.fixture
def ids(engine):
    """acme, shop and bank's account ids."""
    with writing(engine) as conn:
        return [add_account(conn, name) for name in ("acme", "shop", "bank")]


def test_add_remove_and_of(engine, ids):
    acme, shop, _ = ids
    assert run(engine, senders.of, acme) == []
    assert run(engine, senders.add, acme, "ACME") is True
    assert run(engine, senders.add, acme, "36180") is True
    assert run(engine, senders.add, acme, "ACME") is False  # had it
    assert run(engine, senders.of, acme) == ["36180", "ACME"]
    assert run(engine, senders.of, shop) == []
    assert run(engine, senders.remove, acme, "ACME") is True
    assert run(engine, senders.remove, acme, "ACME") is False
    assert run(engine, senders.remove, shop, "36180") is False  # not shop's
    assert run(engine, senders.of, acme) == ["36180"]


def test_all_by_account_and_the_account_object(engine, ids):
    acme, shop, bank = ids
    run(engine, senders.add, acme, "ACME")
    run(engine, senders.add, acme, "36180")
    run(engine, senders.add, shop, "36180")
    assert run(engine, senders.all_by_account) == {
        acme: frozenset({"ACME", "36180"}),
        shop: frozenset({"36180"}),
    }
    with engine.connect() as conn:
        assert accounts.get(conn, "acme").senders == {"ACME", "36180"}
        listed = {a.system_id: a.senders for a in accounts.all_accounts(conn)}
    assert listed == {"acme": {"ACME", "36180"}, "shop": {"36180"}, "bank": frozenset()}


def test_accounts_of_a_shared_short_code(engine, ids):
    acme, shop, bank = ids
    for account in (shop, acme):
        run(engine, senders.add, account, "36180")
    run(engine, senders.add, bank, "BANK")
    assert run(engine, senders.accounts_of, "36180") == [acme, shop]
    assert run(engine, senders.accounts_of, "BANK") == [bank]
    assert run(engine, senders.accounts_of, "38000") == []


def test_last_sender_of_a_shared_short_code(engine, ids):
    acme, shop, bank = ids
    for account in (acme, shop):
        run(engine, senders.add, account, "36180")
    with writing(engine) as conn:
        add_message(conn, acme, 1, source="36180", destination=SUBSCRIBER)
        add_message(conn, shop, 2, source="36180", destination=SUBSCRIBER)  # the last one
        add_message(conn, acme, 3, source="36180", destination=OTHER)  # another subscriber
        add_message(conn, acme, 4, source="ACME", destination=SUBSCRIBER)  # another address
        add_message(conn, bank, 5, source="36180", destination=SUBSCRIBER)  # not bank's
    assert run(engine, senders.last_sender, "36180", SUBSCRIBER) == shop
    assert run(engine, senders.last_sender, "36180", OTHER) == acme
    with writing(engine) as conn:
        add_message(conn, acme, 6, source="36180", destination=SUBSCRIBER)
    assert run(engine, senders.last_sender, "36180", SUBSCRIBER) == acme


def test_last_sender_of_an_address_nobody_registered(engine, ids):
    acme, shop, _ = ids
    with writing(engine) as conn:
        add_message(conn, shop, 1, source="33937123456", destination=SUBSCRIBER)
        add_message(conn, acme, 2, source="33937123456", destination=OTHER)
    assert run(engine, senders.last_sender, "33937123456", SUBSCRIBER) == shop
    assert run(engine, senders.last_sender, "33937123456", OTHER) == acme


def test_last_sender_is_none_when_nobody_sent(engine, ids):
    acme, _, _ = ids
    run(engine, senders.add, acme, "36180")
    assert run(engine, senders.last_sender, "36180", SUBSCRIBER) is None
    with writing(engine) as conn:
        add_message(conn, acme, 1, source="36180", destination=OTHER)
        add_message(conn, acme, 2, source="ACME", destination=SUBSCRIBER)
    assert run(engine, senders.last_sender, "36180", SUBSCRIBER) is None
    assert run(engine, senders.last_sender, "38000", SUBSCRIBER) is None
