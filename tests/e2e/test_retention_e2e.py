"""Retention on a running switch: `smsc serve` purges the texts and numbers of messages that
finished longer ago than `[retention] messages_days` as it starts (then once a day), and
leaves the others; `smsc db purge` beside it finds nothing left to do."""

import json
import time

import pytest
from sqlalchemy import create_engine, insert

from smsc.store import messages, schema
from smsc.store.messages import COLUMNS

pytestmark = pytest.mark.e2e

DAY = 86_400.0
DEST = "33612345678"


def store_message(url: str, message_id: int, days_ago: float) -> None:
    at = time.time() - days_ago * DAY
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            account = conn.execute(
                schema.accounts.select().where(schema.accounts.c.system_id == "keeper")
            ).one()
            row = dict(
                id=message_id, account_id=account.id, service_type="", source_ton=1,
                source_npi=1, source="33798765432", destination=DEST, esm_class=0,
                protocol_id=0, priority=0, registered_delivery=1, data_coding=0,
                body=b"a secret", tlvs=b"", submitted_at=at, due_at=at, expires_at=at + DAY,
                state="DELIVERED", updated_at=at, origin=0, multi_id=None,
            )  # fmt: skip
            messages.insert_rows(conn, [tuple(row.get(c) for c in COLUMNS)])
            conn.execute(
                insert(schema.outbox).values(
                    account_id=account.id,
                    message_id=message_id,
                    source_ton=1,
                    source_npi=1,
                    source=DEST,
                    destination="33798765432",
                    esm_class=4,
                    data_coding=0,
                    body=b"id:1 stat:DELIVRD text:a secret",
                    tlvs=b"",
                    state="DONE",
                    attempts=1,
                    created_at=at,
                    due_at=at,
                    expires_at=at + DAY,
                )  # fmt: skip
            )
    finally:
        engine.dispose()


def test_serve_purges_old_finished_messages_as_it_starts(smsc_factory, smsc_account):
    server = smsc_factory(
        config={"retention": {"messages_days": 30}},
        accounts=[smsc_account("keeper", "pw")],
        start=False,
    )
    store_message(server.store_url, 1, 31)
    store_message(server.store_url, 2, 29)

    server.start()
    deadline = time.monotonic() + 20
    while "purged the texts and numbers of 1 messages and 1 outbox rows" not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)

    rows = server.query("SELECT id, source, destination, body FROM messages ORDER BY id")
    assert [tuple(r[:3]) for r in rows] == [(1, "", ""), (2, "33798765432", DEST)]
    assert bytes(rows[0][3]) == b"" and bytes(rows[1][3]) == b"a secret"
    outbox = server.query("SELECT source, destination, body FROM outbox ORDER BY id")
    assert [(s, d, bytes(b)) for s, d, b in outbox] == [
        ("", "", b""),
        (DEST, "33798765432", b"id:1 stat:DELIVRD text:a secret"),
    ]
    assert server.message("1")["purged"] is True
    assert server.message("2")["purged"] is False
    # The admin's purge, beside the running server: nothing more to do.
    out = json.loads(server.cli("db", "purge", "--older-than", "30", "--json").stdout)
    assert (out["messages"], out["outbox"]) == (0, 0)
    assert "a secret" not in server.log() and DEST not in server.log()
