"""The opt-out list (smsc.store.optouts) on a real SQLite store: keyed hashes, the key kept in
the store, lists per account and the global one, retention, and nothing kept in clear."""

import pytest
from sqlalchemy import select, text
from test_queue import add_account, run

from smsc.store import optouts, schema
from smsc.store.db import writing

NOW = 1_767_225_600.0
DAY = 86_400.0
NUMBER = "33612345678"
OTHER = "33798765432"
KEY = b"k3y-of-the-switch"


def h(number: str, key: bytes = KEY) -> bytes:
    return optouts.digest(key, number)


@pytest.fixture
def accounts_(engine):
    """Two account ids, acme and shop (ids other than GLOBAL)."""
    with writing(engine) as conn:
        ids = [add_account(conn, system_id) for system_id in ("acme", "shop")]
    assert optouts.GLOBAL not in ids
    return ids


def entries(engine) -> dict[tuple[bytes, int], tuple[str, float]]:
    with engine.connect() as conn:
        rows = conn.execute(select(schema.optouts)).all()
    return {(r.number_hash, r.scope): (r.origin, r.created_at) for r in rows}


# -- hashing --------------------------------------------------------------------------------


def test_hashes_are_keyed_and_stable():
    assert h(NUMBER) == h(NUMBER)
    assert len(h(NUMBER)) == 32
    assert h(NUMBER) != h(NUMBER, b"another key")
    assert h(NUMBER) != h(OTHER)
    assert NUMBER.encode() not in h(NUMBER) and NUMBER not in h(NUMBER).hex()


def test_the_configured_key_is_used_as_is_and_not_stored(engine):
    assert run(engine, optouts.hash_key, "configured") == b"configured"
    with engine.connect() as conn:
        assert conn.execute(select(schema.settings)).all() == []


def test_the_generated_key_is_kept_and_reused(engine):
    first = run(engine, optouts.hash_key, None)
    assert len(first) == 32
    assert run(engine, optouts.hash_key, None) == first
    assert run(engine, optouts.hash_key) == first
    with engine.connect() as conn:
        (value,) = conn.execute(select(schema.settings.c.value)).scalars()
    assert bytes.fromhex(value) == first
    assert run(engine, optouts.hash_key, "") == first  # empty: not configured


def test_another_store_generates_another_key(engine, tmp_path):
    from smsc.store import db

    other = db.make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    db.upgrade(other)
    try:
        assert run(other, optouts.hash_key, None) != run(engine, optouts.hash_key, None)
    finally:
        other.dispose()


# -- add, remove, lists ---------------------------------------------------------------------


def test_add_counts_new_numbers_and_refreshes_known_ones(engine, accounts_):
    acme, _ = accounts_
    assert run(engine, optouts.add, acme, [h(NUMBER)], "stop", NOW) == 1
    assert entries(engine) == {(h(NUMBER), acme): ("stop", NOW)}
    # Again, later, with one new number and a repeat within the batch.
    batch = [h(NUMBER), h(OTHER), h(OTHER)]
    assert run(engine, optouts.add, acme, batch, "import", NOW + DAY) == 1
    assert entries(engine) == {
        (h(NUMBER), acme): ("stop", NOW + DAY),  # its time starts over; origin kept
        (h(OTHER), acme): ("import", NOW + DAY),
    }
    assert run(engine, optouts.add, acme, [], "admin", NOW) == 0


def test_the_same_number_on_several_lists(engine, accounts_):
    acme, shop = accounts_
    for scope in (optouts.GLOBAL, acme, shop):
        assert run(engine, optouts.add, scope, [h(NUMBER)], "admin", NOW) == 1
    assert run(engine, optouts.scopes_of, h(NUMBER)) == [optouts.GLOBAL, acme, shop]
    assert run(engine, optouts.scopes_of, h(OTHER)) == []


def test_remove_takes_one_list_only(engine, accounts_):
    acme, shop = accounts_
    run(engine, optouts.add, acme, [h(NUMBER)], "stop", NOW)
    run(engine, optouts.add, shop, [h(NUMBER)], "stop", NOW)
    assert run(engine, optouts.remove, acme, h(NUMBER)) is True
    assert run(engine, optouts.remove, acme, h(NUMBER)) is False
    assert run(engine, optouts.remove, optouts.GLOBAL, h(NUMBER)) is False
    assert run(engine, optouts.scopes_of, h(NUMBER)) == [shop]


def test_blocked_by_the_account_list_or_the_global_one(engine, accounts_):
    acme, shop = accounts_
    third = "33611111111"
    run(engine, optouts.add, acme, [h(NUMBER)], "stop", NOW)
    run(engine, optouts.add, optouts.GLOBAL, [h(OTHER)], "admin", NOW)
    wanted = [(a, h(n)) for a in (acme, shop) for n in (NUMBER, OTHER, third)]
    assert run(engine, optouts.blocked, wanted) == {
        (acme, h(NUMBER)),  # its own list
        (acme, h(OTHER)),  # the global list
        (shop, h(OTHER)),  # the global list; not acme's
    }
    assert run(engine, optouts.blocked, []) == set()


def test_blocked_asks_in_chunks(engine, accounts_):
    acme, shop = accounts_
    numbers = [f"336{i:08d}" for i in range(1000)]
    run(engine, optouts.add, acme, [h(n) for n in numbers[::2]], "import", NOW)
    wanted = [(a, h(n)) for n in numbers for a in (acme, shop)]
    assert run(engine, optouts.blocked, wanted) == {(acme, h(n)) for n in numbers[::2]}


# -- retention, stats, export ---------------------------------------------------------------


def test_purge_forgets_what_is_older_than_the_retention(engine, accounts_):
    acme, _ = accounts_
    run(engine, optouts.add, acme, [h(NUMBER)], "stop", NOW - 1096 * DAY)
    run(engine, optouts.add, optouts.GLOBAL, [h(NUMBER)], "admin", NOW - 1094 * DAY)
    run(engine, optouts.add, acme, [h(OTHER)], "stop", NOW - 2000 * DAY)
    run(engine, optouts.add, acme, [h(OTHER)], "stop", NOW)  # a new STOP: time starts over
    assert run(engine, optouts.purge, NOW - 1095 * DAY) == 1
    assert set(entries(engine)) == {(h(NUMBER), optouts.GLOBAL), (h(OTHER), acme)}
    assert run(engine, optouts.purge, NOW - 1095 * DAY) == 0


def test_stats_per_list(engine, accounts_):
    acme, shop = accounts_
    assert run(engine, optouts.stats) == []
    run(engine, optouts.add, acme, [h(NUMBER)], "stop", NOW - DAY)
    run(engine, optouts.add, acme, [h(OTHER)], "stop", NOW)
    run(engine, optouts.add, optouts.GLOBAL, [h(NUMBER)], "admin", NOW - 2 * DAY)
    assert run(engine, optouts.stats) == [
        (optouts.GLOBAL, 1, NOW - 2 * DAY, NOW - 2 * DAY),
        (acme, 2, NOW - DAY, NOW),
    ]


def test_export_oldest_first_all_or_one_list(engine, accounts_):
    acme, _ = accounts_
    run(engine, optouts.add, acme, [h(OTHER)], "stop", NOW)
    run(engine, optouts.add, optouts.GLOBAL, [h(NUMBER)], "admin", NOW - DAY)
    assert list(run(engine, lambda c: list(optouts.export(c)))) == [
        (h(NUMBER), optouts.GLOBAL, "admin", NOW - DAY),
        (h(OTHER), acme, "stop", NOW),
    ]
    assert run(engine, lambda c: list(optouts.export(c, acme))) == [(h(OTHER), acme, "stop", NOW)]
    assert run(engine, lambda c: list(optouts.export(c, optouts.GLOBAL))) == [
        (h(NUMBER), optouts.GLOBAL, "admin", NOW - DAY)
    ]


def test_no_number_is_kept_in_clear(engine, accounts_):
    """Every column of every row, read raw: the digits appear nowhere, as text or as hex."""
    acme, _ = accounts_
    numbers = [NUMBER, OTHER, "33123456789"]
    key = run(engine, optouts.hash_key, None)
    for scope in (optouts.GLOBAL, acme):
        run(engine, optouts.add, scope, [optouts.digest(key, n) for n in numbers], "stop", NOW)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM optouts")).all()
        exported = list(optouts.export(conn))
    assert len(rows) == 6
    for row in [*rows, *exported]:
        for value in row:
            raw = value if isinstance(value, bytes) else str(value).encode()
            for number in numbers:
                for form in (number, number[2:], "0" + number[2:]):
                    assert form.encode() not in raw  # as text (or bytes)
                    assert form not in raw.hex()  # nor as hex digits


def test_the_hasher_of_a_key_digests_as_digest():
    key = b"k" * 32
    digest = optouts.hasher(key)
    for number in ("33612345678", "33700000001", "447700900123"):
        assert digest(number) == optouts.digest(key, number)
    assert optouts.hasher(b"other")("33612345678") != digest("33612345678")


def test_the_hasher_takes_keys_longer_than_a_block():
    key = bytes(range(100))
    assert optouts.hasher(key)("33612345678") == optouts.digest(key, "33612345678")
