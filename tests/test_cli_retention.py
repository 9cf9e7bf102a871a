"""`smsc db purge` (retention of finished messages' texts and numbers), and how `smsc message
show` tells a purged message, through click's CliRunner on a temp store."""

import json
import time

import pytest
from sqlalchemy import select
from test_cli import fails, ok
from test_cli_ops import key_values, store_message

from smsc.store import accounts, db, messages, schema
from smsc.store.messages import COLUMNS

DAY = 86_400.0
DEST = "33612345678"


def ago(days: float) -> float:
    return time.time() - days * DAY


def finished(db_url, message_id, days_ago, state="DELIVERED", **values) -> None:
    at = ago(days_ago)
    store_message(
        db_url, message_id, state=state, submitted_at=at, due_at=at, expires_at=at + 2 * DAY,
        updated_at=at, receipts=[dict(created_at=at, state="DONE", attempts=1)], **values,
    )  # fmt: skip


def stored(db_url, table=schema.messages) -> list:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(table).order_by(table.c.id)).all()
    finally:
        engine.dispose()


def test_purge_forgets_old_finished_messages_and_their_receipts(ready, db_url):
    finished(db_url, 1, 100)
    finished(db_url, 2, 100, source_ton=1, source="33798765432")
    finished(db_url, 3, 10)  # within the default 90 days
    store_message(db_url, 4, submitted_at=ago(100), updated_at=ago(100))  # still waiting

    out = json.loads(ok(ready("db", "purge", "--json")))

    assert (out["messages"], out["outbox"], out["older_than_days"]) == (2, 2, 90)
    assert out["dry_run"] is False
    rows = stored(db_url)
    assert [(m.destination, m.source, m.body) for m in rows] == [
        ("", "ACME", b""),
        ("", "", b""),
        (DEST, "ACME", b"hello there"),
        (DEST, "ACME", b"hello there"),
    ]
    receipts = stored(db_url, schema.outbox)
    assert [(r.source, r.body) for r in receipts] == [
        ("", b""),
        ("", b""),
        (DEST, receipts[2].body),
    ]
    assert receipts[2].body  # the recent message's receipt keeps its text

    again = json.loads(ok(ready("db", "purge", "--json")))
    assert (again["messages"], again["outbox"]) == (0, 0)


def test_purge_says_what_it_did_in_a_line(ready, db_url):
    finished(db_url, 1, 100)
    out = ok(ready("db", "purge"))
    assert out.startswith("purged the texts and numbers of 1 messages and 1 outbox rows ")
    assert out.rstrip().endswith("(90 days ago)")


def test_purge_older_than_and_dry_run(ready, db_url):
    finished(db_url, 1, 100)
    finished(db_url, 2, 40)

    dry = json.loads(ok(ready("db", "purge", "--older-than", "30", "--dry-run", "--json")))
    assert (dry["messages"], dry["outbox"], dry["dry_run"]) == (2, 2, True)
    assert ok(ready("db", "purge", "--older-than", "30", "--dry-run")).startswith(
        "would purge the texts and numbers of 2 messages"
    )
    assert [m.destination for m in stored(db_url)] == [DEST, DEST]

    assert json.loads(ok(ready("db", "purge", "--older-than", "365", "--json")))["messages"] == 0
    assert json.loads(ok(ready("db", "purge", "--older-than", "30", "--json")))["messages"] == 2
    refused = ready("db", "purge", "--older-than", "0")
    assert refused.exit_code == 2 and "'--older-than': 0 is not in the range" in refused.stderr


def test_purge_over_more_rows_than_one_transaction_takes(ready, db_url):
    at = ago(100)
    engine = db.make_engine(db_url)
    try:
        with db.writing(engine) as conn:
            account = accounts.get(conn, "acme").id
            row = dict(
                account_id=account, service_type="", source_ton=5, source_npi=0, source="ACME",
                destination=DEST, esm_class=0, protocol_id=0, priority=0, registered_delivery=0,
                data_coding=0, body=b"hi", tlvs=b"", submitted_at=at, due_at=at,
                expires_at=at + DAY, state="DELIVERED", updated_at=at, origin=0, multi_id=None,
            )  # fmt: skip
            values = [row.get(c) for c in COLUMNS[1:]]
            messages.insert_rows(conn, [(i, *values) for i in range(1, 2501)])
    finally:
        engine.dispose()

    assert json.loads(ok(ready("db", "purge", "--json")))["messages"] == 2500
    assert {m.destination for m in stored(db_url)} == {""}
    assert json.loads(ok(ready("db", "purge", "--json", "--rescan")))["messages"] == 0


def test_purge_needs_a_retention(ready, config):
    config.write_text(config.read_text() + "\n[retention]\nmessages_days = 0\n")
    fails(ready("db", "purge"), "keeps messages for ever: give --older-than DAYS")
    assert json.loads(ok(ready("db", "purge", "--older-than", "1", "--json")))["messages"] == 0


def test_purge_refuses_a_store_behind_the_schema(smsc):
    fails(smsc("db", "purge"), "run `smsc db upgrade`")


def test_message_show_tells_a_purged_message(ready, db_url):
    finished(db_url, 1, 100, carrier="orange", attempts=1)
    ok(ready("db", "purge"))

    shown = key_values(ok(ready("message", "show", "1", "--text")))
    assert shown["destination"] == "- (purged)"
    assert shown["source"] == "ACME"  # an alphanumeric sender id is kept
    assert shown["text"] == "- (purged)" and shown["length"] == "- (purged)"
    assert shown["state"] == "DELIVERED" and shown["carrier"] == "orange"

    data = json.loads(ok(ready("message", "show", "1", "--json", "--text")))
    assert data["purged"] is True
    assert (data["destination"], data["text"], data["length"]) == ("", None, 0)
    assert data["state"] == "DELIVERED" and len(data["client_receipts"]) == 1


@pytest.mark.parametrize("args", [(), ("--json",)])
def test_message_show_of_a_message_not_purged(ready, db_url, args):
    finished(db_url, 1, 10)
    out = ok(ready("message", "show", "1", "--text", *args))
    if args:
        assert json.loads(out)["purged"] is False
    else:
        assert key_values(out)["destination"] == DEST
        assert "purged" not in out
