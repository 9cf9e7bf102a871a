"""Retention (smsc.store.retention) on a real store: what finished messages and outbox rows
said, and to whom, is forgotten after the retention; everything else stays, and a second run
changes nothing."""

import pytest
from sqlalchemy import event, insert, select, update
from stores import SyncStore, sqlite_only
from test_queue import add_account, add_message

from smsc.config import ConfigError, RetentionConfig, load
from smsc.store import outbox, retention, schema
from smsc.store.db import writing
from smsc.store.messages import FINAL, State

NOW = 1_767_225_600.0
DAY = 86_400.0
BEFORE = NOW - 90 * DAY  # the cutoff of a 90-day retention
OLD = BEFORE - DAY  # ended before the cutoff
RECENT = BEFORE + DAY
DEST = "33612345678"


@pytest.fixture
def account(engine):
    with writing(engine) as conn:
        return add_account(conn)


def store(engine, account, message_id, state=State.DELIVERED, at=OLD, **values):
    """A message submitted and ended at `at` (valid two days)."""
    values = dict(submitted_at=at, due_at=at, expires_at=at + 2 * DAY, updated_at=at) | values
    with writing(engine) as conn:
        add_message(conn, account, message_id, state=state, tlvs=b"\x04\x24\x00\x02hi", **values)


def store_outbox(engine, account, state=outbox.DONE, at=OLD, **values) -> int:
    row = dict(
        account_id=account, message_id=None, source_ton=1, source_npi=1, source=DEST,
        destination="ACME", esm_class=4, data_coding=0, body=b"id:1 stat:DELIVRD text:hello",
        tlvs=b"\x04\x27\x00\x01\x02", state=state, attempts=1, created_at=at, due_at=at,
        expires_at=at + 3 * DAY,
    ) | values  # fmt: skip
    with writing(engine) as conn:
        return conn.execute(insert(schema.outbox).values(**row)).inserted_primary_key[0]


def row(engine, table, row_id):
    with engine.connect() as conn:
        return conn.execute(select(table).where(table.c.id == row_id)).one()


def purge(engine, before=BEFORE, now=NOW, **options) -> dict:
    """A whole purge, each step in a transaction of its own; {table: purged}."""
    done = {}
    for walk in retention.walks(before, now, **options):
        done[walk.table] = retention.purge_in_transactions(engine, walk)
        done[walk.table + "_steps"] = walk.steps
    return done


def floor(engine, table="messages") -> int:
    with engine.connect() as conn:
        return retention._floor(conn, retention._KINDS[table].floor_key)


# -- what is purged, what stays -------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(FINAL))
def test_a_finished_old_message_loses_its_text_and_numbers(engine, account, state):
    store(engine, account, 1, state=state, source_ton=1, source="33798765432", error=0x45)
    with writing(engine) as conn:
        conn.execute(
            insert(schema.message_parts).values(
                message_id=1,
                seq=1,
                carrier="orange",
                carrier_id="a1",
                state=state,
                sent_at=OLD,
                updated_at=OLD,
            )  # fmt: skip
        )
    before = row(engine, schema.messages, 1)

    assert purge(engine)["messages"] == 1

    after = row(engine, schema.messages, 1)
    assert (after.body, after.tlvs, after.destination, after.source) == (b"", b"", "", "")
    # What accounting and `message show` need stays as it was.
    purged = ("body", "tlvs", "destination", "source")
    kept = [c.name for c in schema.messages.c if c.name not in purged]
    assert [after._mapping[c] for c in kept] == [before._mapping[c] for c in kept]
    assert retention.is_purged(after)
    with engine.connect() as conn:  # the parts at the carrier hold no number nor text
        (part,) = conn.execute(select(schema.message_parts)).all()
    assert (part.carrier_id, part.state) == ("a1", state)


def test_an_alphanumeric_sender_is_kept_a_short_code_is_not(engine, account):
    store(engine, account, 1, source_ton=5, source="ACME")
    store(engine, account, 2, source_ton=0, source="36180")
    store(engine, account, 3, source_ton=5, source="Shop24")

    assert purge(engine)["messages"] == 3

    sources = [row(engine, schema.messages, i).source for i in (1, 2, 3)]
    assert sources == ["ACME", "", "Shop24"]
    assert all(row(engine, schema.messages, i).destination == "" for i in (1, 2, 3))


@pytest.mark.parametrize("state", [State.ACCEPTED, State.SENDING, State.ENROUTE])
def test_messages_waiting_or_in_flight_are_never_touched(engine, account, state):
    store(engine, account, 1, state=state, at=OLD - 400 * DAY)  # however old

    assert purge(engine)["messages"] == 0

    m = row(engine, schema.messages, 1)
    assert (m.body, m.destination) == (b"hello", DEST)


def test_a_message_that_ended_within_the_retention_keeps_its_text(engine, account):
    # Submitted long ago, ended recently (a late receipt): the retention counts from its end.
    store(engine, account, 1, at=OLD, updated_at=RECENT)
    store(engine, account, 2, at=RECENT)

    assert purge(engine)["messages"] == 0
    assert [row(engine, schema.messages, i).destination for i in (1, 2)] == [DEST, DEST]


def test_outbox_rows_delivered_or_expired_long_ago_lose_their_text_and_numbers(engine, account):
    done = store_outbox(engine, account)  # a receipt: to the client's sender ACME
    expired = store_outbox(engine, account, state=outbox.EXPIRED, destination="36180")  # a reply
    pending = store_outbox(engine, account, state=outbox.PENDING, expires_at=NOW + DAY)
    recent = store_outbox(engine, account, at=RECENT)

    assert purge(engine)["outbox"] == 2

    for i, destination, state in ((done, "ACME", outbox.DONE), (expired, "", outbox.EXPIRED)):
        r = row(engine, schema.outbox, i)
        assert (r.body, r.tlvs, r.source, r.destination) == (b"", b"", "", destination)
        assert (r.state, r.attempts, r.created_at, r.account_id) == (state, 1, OLD, account)
    for i in (pending, recent):
        r = row(engine, schema.outbox, i)
        assert (r.source, r.body) == (DEST, b"id:1 stat:DELIVRD text:hello")


def test_the_ledger_is_left_alone(engine, account):
    store(engine, account, 1)
    with writing(engine) as conn:
        conn.execute(
            insert(schema.ledger).values(
                account_id=account, at=OLD, kind="charge", amount=-1000, message_id=1
            )
        )
        before = conn.execute(select(schema.ledger)).all()

    purge(engine)

    with engine.connect() as conn:
        assert conn.execute(select(schema.ledger)).all() == before


# -- idempotent, bounded ---------------------------------------------------------------------


def test_a_second_run_purges_nothing_and_rewrites_nothing(engine, account):
    for i in range(1, 6):
        store(engine, account, i)
    store_outbox(engine, account)
    assert purge(engine)["messages"] == 5

    # A purged row does not match again, even walked from the first id.
    again = purge(engine, rescan=True)
    assert (again["messages"], again["outbox"]) == (0, 0)
    assert purge(engine)["messages"] == 0


def test_a_purge_works_in_ranges_of_chunk_ids(engine, account):
    for i in range(1, 36):
        store(engine, account, i)
    store(engine, account, 36, at=RECENT)

    done = purge(engine, chunk=10)

    assert done["messages"] == 35
    assert done["messages_steps"] == 4  # 1-10, 11-20, 21-30, 31-36
    assert [row(engine, schema.messages, i).destination for i in (1, 10, 11, 35, 36)] == [
        "", "", "", "", DEST,
    ]  # fmt: skip


def test_a_step_is_one_transaction_and_the_writer_may_run_it_again(engine, account):
    # The writer runs a batch again after a deadlock: a step changes nothing in its walk, only
    # `advance` (after the commit) does.
    for i in range(1, 21):
        store(engine, account, i)
    walk = retention.Walk("messages", BEFORE, NOW, chunk=10)
    with engine.connect() as conn, conn.begin() as transaction:
        walk.step(conn)
        transaction.rollback()
    with writing(engine) as conn:
        step = walk.step(conn)
    walk.advance(step)
    assert (step.purged, step.position, walk.purged, walk.done) == (10, 11, 10, False)
    with writing(engine) as conn:
        walk.advance(walk.step(conn))
    assert (walk.purged, walk.done) == (20, True)


def test_the_next_run_starts_where_this_one_stopped(engine, account):
    for i in range(1, 31):
        store(engine, account, i)
    store(engine, account, 31, at=RECENT)  # ended within the retention: holds the floor
    for i in range(32, 41):
        store(engine, account, i, at=RECENT)

    first = purge(engine, chunk=10)
    assert first["messages"] == 30 and floor(engine) == 31

    # A day later: only from 31 on is looked at, and the run stops at the first recent range.
    second = purge(engine, chunk=10)
    assert (second["messages"], second["messages_steps"]) == (0, 1)

    # Once 31 is old enough, it goes, and the floor moves past what is purged.
    later = purge(engine, before=RECENT + DAY, now=RECENT + 91 * DAY, chunk=10)
    assert later["messages"] == 10
    assert floor(engine) == 41


def test_a_message_stuck_in_flight_does_not_hold_the_floor(engine, account):
    # Its receipt never came: it stays ENROUTE and is never touched, but a week past its
    # validity it no longer keeps every later run looking at what came after it.
    store(engine, account, 1, state=State.ENROUTE)
    store(engine, account, 2)
    assert purge(engine)["messages"] == 1
    assert floor(engine) == 3
    assert row(engine, schema.messages, 1).destination == DEST

    # Should it end after all, a run from the first id purges it once it is old enough.
    with writing(engine) as conn:
        conn.execute(
            update(schema.messages)
            .where(schema.messages.c.id == 1)
            .values(state=State.UNKNOWN, updated_at=OLD)
        )
    assert purge(engine)["messages"] == 0
    assert purge(engine, rescan=True)["messages"] == 1


def test_a_message_in_flight_within_its_validity_holds_the_floor(engine, account):
    store(engine, account, 1, state=State.ENROUTE, expires_at=NOW + DAY)
    store(engine, account, 2)
    assert purge(engine)["messages"] == 1
    assert floor(engine) == 1
    with writing(engine) as conn:
        conn.execute(
            update(schema.messages)
            .where(schema.messages.c.id == 1)
            .values(state=State.DELIVERED, updated_at=OLD)
        )
    assert purge(engine)["messages"] == 1
    assert floor(engine) == 3


def test_a_dry_run_counts_and_changes_nothing(engine, account):
    store(engine, account, 1)
    store_outbox(engine, account)

    dry = purge(engine, dry_run=True)

    assert (dry["messages"], dry["outbox"]) == (1, 1)
    assert row(engine, schema.messages, 1).destination == DEST
    with engine.connect() as conn:
        assert conn.execute(select(schema.settings)).all() == []  # no floor either
    assert purge(engine)["messages"] == 1


def test_an_empty_store_purges_nothing(engine):
    assert purge(engine) == {"messages": 0, "messages_steps": 1, "outbox": 0, "outbox_steps": 1}
    assert purge(engine)["messages"] == 0


@sqlite_only
def test_a_step_reads_its_range_by_the_primary_key(engine, account):
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE messages"):
            statements.append((statement, parameters))

    store(engine, account, 1)
    event.listen(engine, "before_cursor_execute", record)
    purge(engine)
    event.remove(engine, "before_cursor_execute", record)
    ((statement, parameters),) = statements
    with engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    assert "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plan[-1][-1]


# -- through the writer ----------------------------------------------------------------------


def test_the_servers_purge_goes_through_the_writer_one_range_a_job(engine, account):
    for i in range(1, 26):
        store(engine, account, i)
    store_outbox(engine, account)
    writer = SyncStore(engine)
    results = []

    retention.purge(writer.write, BEFORE, NOW, chunk=10).addCallback(results.append)

    assert results == [{"messages": 25, "outbox": 1}]
    assert writer.names() == ["step"] * (3 + 1)  # 1-10, 11-20, 21-25; the outbox row


def test_the_servers_purge_stops_when_asked(engine, account):
    for i in range(1, 26):
        store(engine, account, i)
    writer = SyncStore(engine)
    jobs = iter([True, True])
    results = []

    d = retention.purge(writer.write, BEFORE, NOW, lambda: next(jobs, False), chunk=10)
    d.addCallback(results.append)

    assert writer.names() == ["step", "step"]
    assert results == [{"messages": 20, "outbox": 0}]


# -- config ----------------------------------------------------------------------------------


def test_the_retention_is_90_days_by_default_and_0_keeps_for_ever(tmp_path):
    assert RetentionConfig().messages_days == 90
    path = tmp_path / "smsc.toml"
    path.write_text("[retention]\nmessages_days = 0\n")
    assert load(path).retention.messages_days == 0
    path.write_text("[retention]\nmessages_days = -1\n")
    with pytest.raises(ConfigError, match="retention.messages_days: must be 0"):
        load(path)
    path.write_text("[retention]\ndays = 30\n")
    with pytest.raises(ConfigError, match="retention.days: unknown key"):
        load(path)


# -- the server's daily run ------------------------------------------------------------------


def test_the_server_purges_at_the_start_and_then_once_a_day(engine, account):
    from twisted.internet.task import Clock

    from smsc import app
    from smsc.config import Config

    clock = Clock()
    clock.advance(NOW)
    store(engine, account, 1)
    store(engine, account, 2, at=NOW - 89.5 * DAY)  # ends its 90 days tomorrow
    writer = SyncStore(engine)

    loop = app._purge_messages(Config(), writer, clock)

    assert [row(engine, schema.messages, i).destination for i in (1, 2)] == ["", DEST]
    clock.advance(app.RETENTION)
    assert [row(engine, schema.messages, i).destination for i in (1, 2)] == ["", ""]
    loop.stop()
    assert app._purge_messages(Config(retention=RetentionConfig(0)), writer, clock) is None
