"""The nodes sharing a store (smsc.store.nodes) on a real store: joining, the heartbeat and
what it takes back from dead nodes, leased slots of shared limits, leaving."""

import pytest
from sqlalchemy import insert, select
from stores import PG_URL, sqlite_only

from smsc.store import nodes, outbox, schema
from smsc.store.db import writing
from smsc.store.messages import State

NOW = 1_767_225_600.0
LEASE = 10.0


def run(engine, fn, *args):
    with writing(engine) as conn:
        return fn(conn, *args)


def add_node(engine, name: str, heartbeat_at: float) -> int:
    """A node row as another process left it (on SQLite, join would refuse a second node)."""
    values = dict(name=name, started_at=heartbeat_at, heartbeat_at=heartbeat_at)
    with writing(engine) as conn:
        return conn.execute(insert(schema.nodes).values(**values)).inserted_primary_key[0]


def node_id(engine, name: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(schema.nodes.c.id).where(schema.nodes.c.name == name)).scalar()


@pytest.fixture
def account(engine):
    values = dict(
        system_id="acme", password_hash="-", max_binds=1, tps=0, enabled=True, created_at=NOW
    )
    with writing(engine) as conn:
        return conn.execute(insert(schema.accounts).values(**values)).inserted_primary_key[0]


def add_message(engine, account_id: int, message_id: int, state: str, node: int | None) -> None:
    row = dict(
        id=message_id, account_id=account_id, service_type="", source_ton=5, source_npi=0,
        source="ACME", destination="33600000001", esm_class=0, protocol_id=0, priority=0,
        registered_delivery=0, data_coding=0, body=b"hello", tlvs=b"", submitted_at=NOW - 60,
        due_at=NOW - 60, expires_at=NOW + 3600, state=state, updated_at=NOW - 60, node_id=node,
    )  # fmt: skip
    with writing(engine) as conn:
        conn.execute(insert(schema.messages).values(**row))


def add_delivery(engine, account_id: int, state: str, node: int | None) -> int:
    row = dict(
        account_id=account_id, source_ton=1, source_npi=1, source="33600000002",
        destination="ACME", esm_class=0, data_coding=0, body=b"STOP", tlvs=b"", state=state,
        attempts=1, created_at=NOW - 60, due_at=NOW - 60, expires_at=NOW + 3600, node_id=node,
    )  # fmt: skip
    with writing(engine) as conn:
        return conn.execute(insert(schema.outbox).values(**row)).inserted_primary_key[0]


def messages(engine) -> dict[int, tuple]:
    m = schema.messages
    with engine.connect() as conn:
        rows = conn.execute(select(m.c.id, m.c.state, m.c.node_id, m.c.due_at))
        return {r.id: (r.state, r.node_id, r.due_at) for r in rows}


def deliveries(engine) -> dict[int, tuple]:
    o = schema.outbox
    with engine.connect() as conn:
        rows = conn.execute(select(o.c.id, o.c.state, o.c.node_id, o.c.due_at))
        return {r.id: (r.state, r.node_id, r.due_at) for r in rows}


def leases(engine) -> dict[tuple, tuple]:
    t = schema.leases
    with engine.connect() as conn:
        rows = conn.execute(select(t))
        return {(r.kind, r.key, r.slot): (r.node_id, r.expires_at) for r in rows}


def take(engine, node: int, key="orange", limit=2, now=NOW, kind=nodes.CARRIER):
    return run(engine, nodes.take, node, kind, key, limit, now, LEASE)


# -- join ------------------------------------------------------------------------------------


def test_join_registers_the_node_and_gives_it_its_row_back_later(engine):
    a, released = run(engine, nodes.join, "a", NOW, LEASE)
    assert released == (0, 0)
    assert node_id(engine, "a") == a
    again, _ = run(engine, nodes.join, "a", NOW + 60, LEASE)
    assert again == a
    with engine.connect() as conn:
        row = conn.execute(select(schema.nodes)).one()
    assert (row.name, row.started_at, row.heartbeat_at) == ("a", NOW + 60, NOW + 60)


def test_joining_again_releases_that_nodes_own_claims_and_leases_only(engine, account):
    a, _ = run(engine, nodes.join, "a", NOW, LEASE)
    b = add_node(engine, "b", NOW - 2 * LEASE)  # dead, but its rows are not a's to release
    add_message(engine, account, 1, State.SENDING, a)
    add_message(engine, account, 2, State.SENDING, a)
    add_message(engine, account, 3, State.SENDING, b)
    add_message(engine, account, 4, State.ACCEPTED, None)
    add_message(engine, account, 5, State.DELIVERED, a)
    mine = add_delivery(engine, account, outbox.SENDING, a)
    theirs = add_delivery(engine, account, outbox.SENDING, b)
    take(engine, a, key="orange")
    take(engine, a, key="1", kind=nodes.ACCOUNT)
    take(engine, b, key="sfr")

    assert run(engine, nodes.join, "a", NOW + 5, LEASE) == (a, (2, 1))

    assert messages(engine) == {
        1: (State.ACCEPTED, None, NOW + 5),
        2: (State.ACCEPTED, None, NOW + 5),
        3: (State.SENDING, b, NOW - 60),
        4: (State.ACCEPTED, None, NOW - 60),
        5: (State.DELIVERED, a, NOW - 60),
    }
    assert deliveries(engine) == {
        mine: (outbox.PENDING, None, NOW + 5),
        theirs: (outbox.SENDING, b, NOW - 60),
    }
    assert list(leases(engine)) == [(nodes.CARRIER, "sfr", 0)]


@sqlite_only
def test_a_sqlite_store_refuses_a_second_live_node_not_a_stale_one(engine):
    run(engine, nodes.join, "a", NOW, LEASE)
    with pytest.raises(nodes.NodeTaken, match="node a is serving"):
        run(engine, nodes.join, "b", NOW + LEASE - 1, LEASE)
    assert node_id(engine, "b") is None  # nothing of it was stored
    run(engine, nodes.join, "a", NOW + LEASE - 1, LEASE)  # a itself, starting again
    b, _ = run(engine, nodes.join, "b", NOW + 2 * LEASE, LEASE)  # a is stale by then
    assert b != node_id(engine, "a")


@pytest.mark.skipif(not PG_URL, reason="a PostgreSQL store serves several nodes")
def test_a_postgresql_store_takes_several_live_nodes(engine):
    a, _ = run(engine, nodes.join, "a", NOW, LEASE)
    b, _ = run(engine, nodes.join, "b", NOW, LEASE)
    assert a != b
    assert run(engine, nodes.beat, a, NOW + 1, LEASE).live == 2


# -- beat ------------------------------------------------------------------------------------


def test_beat_renews_the_heartbeat_and_the_nodes_own_leases(engine):
    a = add_node(engine, "a", NOW)
    b = add_node(engine, "b", NOW)
    take(engine, a, key="orange")
    take(engine, b, key="orange")

    run(engine, nodes.beat, a, NOW + 4, LEASE)

    with engine.connect() as conn:
        beats = dict(conn.execute(select(schema.nodes.c.name, schema.nodes.c.heartbeat_at)).all())
    assert beats == {"a": NOW + 4, "b": NOW}
    assert leases(engine) == {
        (nodes.CARRIER, "orange", 0): (a, NOW + 4 + LEASE),
        (nodes.CARRIER, "orange", 1): (b, NOW + LEASE),
    }


def test_beat_counts_the_live_nodes_and_reclaims_only_what_dead_ones_claimed(engine, account):
    a = add_node(engine, "a", NOW)
    live = add_node(engine, "live", NOW - LEASE + 1)  # late, not dead
    dead = add_node(engine, "dead", NOW - LEASE)  # silent for a whole lease
    add_node(engine, "gone", 0.0)  # left cleanly
    add_message(engine, account, 1, State.SENDING, a)
    add_message(engine, account, 2, State.SENDING, live)
    add_message(engine, account, 3, State.SENDING, dead)
    add_message(engine, account, 4, State.SENDING, dead)
    add_message(engine, account, 5, State.DELIVERED, dead)
    mine = add_delivery(engine, account, outbox.SENDING, a)
    theirs = add_delivery(engine, account, outbox.SENDING, dead)

    seen = run(engine, nodes.beat, a, NOW, LEASE)

    assert (seen.live, seen.reclaimed) == (2, (2, 1))
    assert messages(engine) == {
        1: (State.SENDING, a, NOW - 60),
        2: (State.SENDING, live, NOW - 60),
        3: (State.ACCEPTED, None, NOW),
        4: (State.ACCEPTED, None, NOW),
        5: (State.DELIVERED, dead, NOW - 60),
    }
    assert deliveries(engine) == {
        mine: (outbox.SENDING, a, NOW - 60),
        theirs: (outbox.PENDING, None, NOW),
    }
    # A second later, "live" is silent for a lease too; what "dead" held is not counted again.
    assert run(engine, nodes.beat, a, NOW + 1, LEASE).reclaimed == (1, 0)
    assert messages(engine)[2] == (State.ACCEPTED, None, NOW + 1)


def test_beat_reports_who_holds_the_live_slots_and_which_are_its_own(engine):
    a = add_node(engine, "a", NOW)
    b = add_node(engine, "b", NOW)
    take(engine, a, key="orange", limit=3)
    take(engine, b, key="orange", limit=3)
    take(engine, a, key="orange", limit=3)
    take(engine, b, key="7", kind=nodes.ACCOUNT)
    take(engine, b, key="sfr", now=NOW - LEASE)  # lapsed: held by nobody

    seen = run(engine, nodes.beat, a, NOW + 1, LEASE)

    assert seen.held == {
        (nodes.CARRIER, "orange"): {a: 2, b: 1},
        (nodes.ACCOUNT, "7"): {b: 1},
    }
    assert seen.mine == {(nodes.CARRIER, "orange"): [0, 2]}


def test_a_late_heartbeat_does_not_take_back_a_lapsed_lease(engine):
    """Renewing it would race another node taking it (that one holds the take lock, the
    heartbeat does not): the node takes it again through `take` instead."""
    a = add_node(engine, "a", NOW)
    b = add_node(engine, "b", NOW)
    take(engine, a, key="orange", limit=1)

    seen = run(engine, nodes.beat, a, NOW + LEASE, LEASE)

    assert seen.mine == {}
    assert leases(engine) == {(nodes.CARRIER, "orange", 0): (a, NOW + LEASE)}
    assert take(engine, b, key="orange", limit=1, now=NOW + LEASE) == 0


# -- take and give_back ----------------------------------------------------------------------


def test_take_hands_out_free_slots_up_to_the_limit(engine):
    a = add_node(engine, "a", NOW)
    b = add_node(engine, "b", NOW)
    assert take(engine, a) == 0
    assert take(engine, b) == 1
    assert take(engine, a) is None
    assert take(engine, b) is None
    assert take(engine, b, key="sfr") == 0  # each key has its own slots
    assert take(engine, b, key="orange", kind=nodes.ACCOUNT) == 0  # and each kind
    assert leases(engine)[(nodes.CARRIER, "orange", 1)] == (b, NOW + LEASE)


def test_a_slot_whose_lease_ran_out_is_free_again(engine):
    a = add_node(engine, "a", NOW)
    b = add_node(engine, "b", NOW)
    take(engine, a, limit=1)
    assert take(engine, b, limit=1, now=NOW + LEASE - 1) is None
    assert take(engine, b, limit=1, now=NOW + LEASE) == 0
    assert leases(engine) == {(nodes.CARRIER, "orange", 0): (b, NOW + 2 * LEASE)}


def test_a_renewed_lease_is_not_free(engine):
    a = add_node(engine, "a", NOW)
    b = add_node(engine, "b", NOW)
    take(engine, a, limit=1)
    run(engine, nodes.beat, a, NOW + LEASE - 1, LEASE)
    assert take(engine, b, limit=1, now=NOW + LEASE + 1) is None


def test_give_back_frees_only_the_nodes_own_slot(engine):
    a = add_node(engine, "a", NOW)
    b = add_node(engine, "b", NOW)
    take(engine, a, limit=1)
    run(engine, nodes.give_back, b, nodes.CARRIER, "orange", 0)
    assert take(engine, b, limit=1) is None
    run(engine, nodes.give_back, a, nodes.CARRIER, "orange", 0)
    assert take(engine, b, limit=1) == 0


# -- leave -----------------------------------------------------------------------------------


def test_leave_hands_everything_to_the_others_at_once(engine, account):
    a = add_node(engine, "a", NOW)
    b = add_node(engine, "b", NOW)
    add_message(engine, account, 1, State.SENDING, a)
    add_message(engine, account, 2, State.SENDING, b)
    mine = add_delivery(engine, account, outbox.SENDING, a)
    take(engine, a, limit=1)
    take(engine, a, key="1", kind=nodes.ACCOUNT, limit=1)

    run(engine, nodes.leave, a, NOW + 1)

    assert messages(engine) == {
        1: (State.ACCEPTED, None, NOW + 1),
        2: (State.SENDING, b, NOW - 60),
    }
    assert deliveries(engine)[mine] == (outbox.PENDING, None, NOW + 1)
    assert leases(engine) == {}
    seen = run(engine, nodes.beat, b, NOW + 2, LEASE)
    assert (seen.live, seen.reclaimed) == (1, (0, 0))
    assert take(engine, b, limit=1, now=NOW + 2) == 0
