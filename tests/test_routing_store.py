"""Admin routes and the number portability table in the store."""

import pytest
from sqlalchemy import select

from smsc.store import db, routing
from smsc.store.routing import RoutingError
from smsc.store.schema import mnp


def test_routes(engine):
    with db.writing(engine) as conn:
        assert routing.all_routes(conn) == []
        assert routing.add_route(conn, "3366", "orange", 2) is None
        assert routing.add_route(conn, "+3366", "sfr", 1) is None  # a leading + is dropped
        assert routing.add_route(conn, "44", "orange", 1) is None
    with engine.connect() as conn:
        assert routing.all_routes(conn) == [
            ("3366", "sfr", 1),
            ("3366", "orange", 2),
            ("44", "orange", 1),
        ]
    with db.writing(engine) as conn:
        assert routing.add_route(conn, "3366", "orange", 0) == 2  # changed: the old priority
        assert routing.remove_route(conn, "44", "orange") is True
        assert routing.remove_route(conn, "44", "orange") is False
        assert routing.remove_route(conn, "3366", "bouygues") is False
    with engine.connect() as conn:
        assert routing.all_routes(conn) == [("3366", "orange", 0), ("3366", "sfr", 1)]


@pytest.mark.parametrize(
    ("prefix", "carrier", "priority", "message"),
    [
        ("", "orange", 1, "is not 1 to 15 E.164 digits"),
        ("33a", "orange", 1, "is not 1 to 15 E.164 digits"),
        ("1" * 16, "orange", 1, "is not 1 to 15 E.164 digits"),
        ("٣٣", "orange", 1, "is not 1 to 15 E.164 digits"),  # digits, but not ASCII
        ("33", "", 1, "carrier name"),
        ("33", "or-ange", 1, "carrier name"),
        ("33", "o" * 33, 1, "carrier name"),
        ("33", "orange", -1, "priority must be 0 or more"),
    ],
)
def test_bad_routes(engine, prefix, carrier, priority, message):
    with pytest.raises(RoutingError, match=message), db.writing(engine) as conn:
        routing.add_route(conn, prefix, carrier, priority)
    with engine.connect() as conn:
        assert routing.all_routes(conn) == []


def test_import_and_lookup(engine):
    with db.writing(engine) as conn:
        n = routing.import_mnp(
            conn,
            [
                ("+33612345678", "sfr"),
                ("0612345679", "orange"),
                ("0033612345680", "bouygues"),
                ("447911123456", "orange"),
            ],
        )
        assert n == 4
    with engine.connect() as conn:
        assert routing.mnp_count(conn) == 4
        assert routing.ported(conn, ["33612345678", "33612345679", "33699999999"]) == {
            "33612345678": "sfr",
            "33612345679": "orange",
        }
        assert routing.ported(conn, []) == {}
        assert routing.ported(conn, ["447911123456", "447911123456"]) == {"447911123456": "orange"}


def test_import_replaces_and_the_last_row_wins(engine):
    with db.writing(engine) as conn:
        routing.import_mnp(conn, [("33612345678", "sfr"), ("33612345679", "sfr")])
    with db.writing(engine) as conn:
        rows = [("33612345678", "orange"), ("0612345678", "bouygues"), ("33612345680", "free")]
        assert routing.import_mnp(conn, rows) == 3
    with engine.connect() as conn:
        assert routing.mnp_count(conn) == 3
        assert {n: c for n, c in conn.execute(select(mnp.c.number, mnp.c.carrier))} == {
            "33612345678": "bouygues",
            "33612345679": "sfr",
            "33612345680": "free",
        }


def test_import_takes_any_iterable_in_chunks(engine, monkeypatch):
    monkeypatch.setattr(routing, "IMPORT_CHUNK", 7)
    rows = ((f"3361{i:07d}", "sfr") for i in range(100))  # a generator, read once
    with db.writing(engine) as conn:
        assert routing.import_mnp(conn, rows) == 100
    with engine.connect() as conn:
        assert routing.mnp_count(conn) == 100


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("12", "sfr"), "is not a phone number"),
        (("0712", "sfr"), "is not a phone number"),
        (("abc", "sfr"), "is not a phone number"),
        (("33612345678", "not a name"), "carrier name"),
    ],
)
def test_a_bad_row_fails_the_import(engine, row, message):
    with pytest.raises(RoutingError, match=message), db.writing(engine) as conn:
        routing.import_mnp(conn, [("33612345677", "sfr"), row])
    with engine.connect() as conn:
        assert routing.mnp_count(conn) == 0  # rolled back with the transaction


def test_ported_in_one_query(engine):
    numbers = [f"3361{i:07d}" for i in range(2000)]
    with db.writing(engine) as conn:
        routing.import_mnp(conn, [(n, "sfr") for n in numbers[::2]])
    statements = []
    sqlite = engine.dialect.name == "sqlite"  # where the statements are seen as run
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        if sqlite:
            raw.set_trace_callback(statements.append)
        found = routing.ported(conn, numbers)  # more than any IN list of bound values
        assert found == {n: "sfr" for n in numbers[::2]}
        assert routing.ported(conn, []) == {}
        if sqlite:
            raw.set_trace_callback(None)
    if sqlite:
        assert len([s for s in statements if "mnp" in s]) == 2
