"""The credit commands of the admin CLI: prepaid/postpaid accounts and their refund policy,
`account credit add|show|history`, and `tariff set|remove|list`, on a temp store."""

import json
import time

import pytest
from sqlalchemy import insert, update
from test_cli import _account, fails, ok

from smsc.store import credit, db, schema

JAN_1 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
DAY = 86_400.0


def table(out: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in out.splitlines())


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


@pytest.fixture
def store(db_url):
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()


def _id(store, system_id="acme") -> int:
    with store.connect() as conn:
        return (
            conn.execute(schema.accounts.select().where(schema.accounts.c.system_id == system_id))
            .one()
            .id
        )


def _top_up(store, amount: int, at: float, note: str = "", system_id="acme") -> None:
    with db.writing(store) as conn:
        credit.top_up(conn, _id(store, system_id), amount, at, note)


def _charge(store, amount: int, at: float, message_id: int, system_id="acme") -> None:
    """A charge as the writer makes it: a ledger row and the balance, together."""
    account_id = _id(store, system_id)
    with db.writing(store) as conn:
        conn.execute(
            insert(schema.ledger).values(
                account_id=account_id, at=at, kind=credit.CHARGE, amount=-amount,
                message_id=message_id, note="",
            )
        )  # fmt: skip
        conn.execute(
            update(schema.accounts)
            .where(schema.accounts.c.id == account_id)
            .values(balance=schema.accounts.c.balance - amount)
        )


def _ledger(store, system_id="acme") -> list[dict]:
    with store.connect() as conn:
        return credit.history(conn, _id(store, system_id))


def _prices(store) -> dict[str, int]:
    with store.connect() as conn:
        return dict(credit.prices(conn))


# -- account add / set / show / list --------------------------------------------------------


def test_an_account_is_postpaid_by_default_and_prepaid_when_asked(ready, db_url):
    acme = _account(db_url, "acme")
    assert (acme.prepaid, acme.balance, acme.low_balance) == (False, 0, 0)
    assert (acme.refund_expired, acme.refund_rejected) == (True, True)
    out = ok(
        ready("account", "add", "kiosk", "--password", "pw", "--prepaid", "--low-balance", "2.5")
    )
    assert out == "account kiosk added\n"
    kiosk = _account(db_url, "kiosk")
    assert (kiosk.prepaid, kiosk.balance, kiosk.low_balance) == (True, 0, 2500)

    listed = json.loads(ok(ready("account", "list", "--json")))
    assert [(a["system_id"], a["billing"], a["balance"], a["balance_milli"]) for a in listed] == [
        ("acme", "postpaid", "0.000", 0),
        ("kiosk", "prepaid", "0.000", 0),
    ]
    shown = json.loads(ok(ready("account", "show", "kiosk", "--json")))
    assert {k: shown[k] for k in ("billing", "balance", "low_balance", "low_balance_milli")} == {
        "billing": "prepaid",
        "balance": "0.000",
        "low_balance": "2.500",
        "low_balance_milli": 2500,
    }
    assert (shown["refund_expired"], shown["refund_rejected"]) == (True, True)
    shown = table(ok(ready("account", "show", "acme")))
    assert (shown["billing"], shown["balance"], shown["low_balance"]) == (
        "postpaid",
        "0.000",
        "- (no alert)",
    )
    assert "balance_milli" not in shown


def test_account_set_billing_threshold_and_refund_policy(ready, db_url):
    out = ok(
        ready(
            "account", "set", "acme", "--prepaid", "--low-balance", "12.5",
            "--no-refund-expired", "--no-refund-rejected",
        )
    )  # fmt: skip
    assert out == "account acme changed\n"
    acme = _account(db_url, "acme")
    assert (acme.prepaid, acme.low_balance, acme.refund_expired, acme.refund_rejected) == (
        True,
        12500,
        False,
        False,
    )
    # One at a time; the others stay.
    ok(ready("account", "set", "acme", "--refund-rejected"))
    acme = _account(db_url, "acme")
    assert (acme.prepaid, acme.low_balance, acme.refund_expired, acme.refund_rejected) == (
        True,
        12500,
        False,
        True,
    )
    ok(ready("account", "set", "acme", "--postpaid", "--low-balance", "0"))
    acme = _account(db_url, "acme")
    assert (acme.prepaid, acme.low_balance, acme.refund_expired) == (False, 0, False)
    assert json.loads(ok(ready("account", "show", "acme", "--json")))["billing"] == "postpaid"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x", "--low-balance 'x' is not a number"),
        ("1.0005", "--low-balance '1.0005': at most three decimals"),
        ("-1", "--low-balance '-1' is negative"),
        ("1e13", "at most 1000000000000.000"),
    ],
)
def test_a_bad_low_balance_is_one_line_and_changes_nothing(ready, db_url, value, message):
    fails(ready("account", "set", "acme", "--prepaid", f"--low-balance={value}"), message)
    fails(ready("account", "add", "new", "--password", "pw", f"--low-balance={value}"), message)
    assert _account(db_url, "acme").prepaid is False
    assert _account(db_url, "new") is None


def test_a_postpaid_account_in_debt_turned_prepaid_gets_a_warning(ready, store, db_url):
    _charge(store, 3000, JAN_1, 1)
    result = ready("account", "set", "acme", "--prepaid")
    assert result.exit_code == 0
    assert result.stdout == "account acme changed\n"
    assert result.stderr.startswith("warning: acme is prepaid with a balance of -3.000")
    assert _account(db_url, "acme").prepaid is True


# -- account credit add ---------------------------------------------------------------------


def test_credit_add_tops_up_and_writes_the_ledger(ready, store, db_url):
    ok(ready("account", "set", "acme", "--prepaid"))
    before = time.time()
    out = ok(ready("account", "credit", "add", "acme", "12.5", "--note", "invoice 14"))
    assert out == "added 12.500 to acme: balance 12.500 (prepaid)\n"
    assert ok(ready("account", "credit", "add", "acme", "0.001")) == (
        "added 0.001 to acme: balance 12.501 (prepaid)\n"
    )
    assert _account(db_url, "acme").balance == 12501
    (first, second) = _ledger(store)
    assert (first["kind"], first["amount"], first["message_id"], first["note"]) == (
        "topup",
        12500,
        None,
        "invoice 14",
    )
    assert (second["amount"], second["note"]) == (1, "")
    assert before <= first["at"] <= second["at"] <= time.time()


def test_credit_add_to_a_postpaid_account_pays_for_its_usage(ready, store, db_url):
    _charge(store, 7000, JAN_1, 1)
    assert ok(ready("account", "credit", "add", "acme", "5")) == (
        "added 5.000 to acme: balance -2.000 (postpaid)\n"
    )
    assert _account(db_url, "acme").balance == -2000
    assert _account(db_url, "acme").prepaid is False


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "amount 0: a top-up must be more than 0"),
        ("0.000", "a top-up must be more than 0"),
        ("-5", "amount -5: a top-up must be more than 0"),
        ("-0.5", "a top-up must be more than 0"),
        ("abc", "amount 'abc' is not a number"),
        ("1.2345", "amount '1.2345': at most three decimals"),
        ("nan", "is not a number"),
        ("1e20", "at most 1000000000000.000"),
    ],
)
def test_credit_add_refuses_what_is_not_a_top_up(ready, store, db_url, amount, message):
    fails(ready("account", "credit", "add", "acme", amount), message)
    assert _account(db_url, "acme").balance == 0
    assert _ledger(store) == []


def test_credit_add_errors(ready):
    fails(ready("account", "credit", "add", "ghost", "5"), "no account ghost")
    fails(ready("account", "credit", "add", "acme", "5", "--note", "x" * 201), "--note")


# -- account credit show --------------------------------------------------------------------


def test_credit_show(ready, store):
    ok(ready("account", "set", "acme", "--prepaid", "--low-balance", "10", "--no-refund-rejected"))
    _top_up(store, 12_000, JAN_1)
    _charge(store, 2_500, JAN_1 + 1, 7)
    shown = json.loads(ok(ready("account", "credit", "show", "acme", "--json")))
    assert shown == {
        "system_id": "acme",
        "billing": "prepaid",
        "balance": "9.500",
        "balance_milli": 9500,
        "low_balance": "10.000",
        "low_balance_milli": 10000,
        "below_low_balance": True,
        "refund_cancelled": True,
        "refund_expired": True,
        "refund_rejected": False,
        "ledger_sum": "9.500",
        "ledger_sum_milli": 9500,
        "consistent": True,
    }
    assert table(ok(ready("account", "credit", "show", "acme"))) == {
        "system_id": "acme",
        "billing": "prepaid",
        "balance": "9.500",
        "low_balance": "10.000",
        "below_low_balance": "True",
        "refund_cancelled": "True (always)",
        "refund_expired": "True",
        "refund_rejected": "False",
        "ledger_sum": "9.500 (= balance)",
    }
    _top_up(store, 500, JAN_1 + 2)  # back to the threshold: not below it
    shown = json.loads(ok(ready("account", "credit", "show", "acme", "--json")))
    assert (shown["balance_milli"], shown["below_low_balance"]) == (10000, False)


def test_credit_show_of_a_postpaid_account(ready, store):
    _charge(store, 1_250, JAN_1, 1)
    shown = table(ok(ready("account", "credit", "show", "acme")))
    assert (shown["billing"], shown["balance"], shown["low_balance"]) == (
        "postpaid",
        "-1.250",
        "- (no alert)",
    )
    ok(ready("account", "set", "acme", "--low-balance", "5"))
    shown = json.loads(ok(ready("account", "credit", "show", "acme", "--json")))
    assert (shown["low_balance"], shown["below_low_balance"]) == ("5.000", False)  # no alert
    assert table(ok(ready("account", "credit", "show", "acme")))["low_balance"] == (
        "5.000 (postpaid: no alert)"
    )


def test_credit_show_says_loudly_when_the_balance_is_not_the_ledger_sum(ready, store):
    _top_up(store, 5_000, JAN_1)
    with db.writing(store) as conn:  # what must never happen: a balance moved off the ledger
        conn.execute(update(schema.accounts).values(balance=schema.accounts.c.balance + 1))
    result = ready("account", "credit", "show", "acme")
    assert result.exit_code == 1
    assert table(result.stdout)["ledger_sum"] == "5.000 (NOT the balance)"
    assert table(result.stdout)["balance"] == "5.001"
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: INCONSISTENT: the balance of acme (5.001)")
    assert "ledger (5.000)" in line
    result = ready("account", "credit", "show", "acme", "--json")
    assert result.exit_code == 1
    shown = json.loads(result.stdout)
    assert (shown["consistent"], shown["balance_milli"], shown["ledger_sum_milli"]) == (
        False,
        5001,
        5000,
    )


def test_credit_show_of_no_account(ready):
    fails(ready("account", "credit", "show", "ghost"), "no account ghost")


# -- account credit history -----------------------------------------------------------------


@pytest.fixture
def month(ready, store):
    """acme's ledger: a top-up on Jan 1 at 00:00, charges on Jan 1 at 23:30, Jan 2 at 12:00,
    and a top-up on Jan 3 at 00:00 (UTC); bob's top-up on Jan 2."""
    ok(ready("account", "add", "bob", "--password", "pw"))
    _top_up(store, 10_000, JAN_1, "invoice 1")
    _charge(store, 1_000, JAN_1 + DAY - 1800, 41)
    _charge(store, 45, JAN_1 + DAY + DAY / 2, 42)
    _top_up(store, 2_500, JAN_1 + 2 * DAY)
    _top_up(store, 99_000, JAN_1 + DAY, system_id="bob")
    return ready


def _history(run, *args) -> list[dict]:
    return json.loads(ok(run("account", "credit", "history", "acme", "--json", *args)))


def test_credit_history_lists_the_ledger(month):
    lines = rows(ok(month("account", "credit", "history", "acme")))
    assert lines == [
        ["at", "kind", "amount", "message_id", "note"],
        ["2026-01-01T00:00:00+00:00", "topup", "10.000", "-", "invoice", "1"],
        ["2026-01-01T23:30:00+00:00", "charge", "-1.000", "41", "-"],
        ["2026-01-02T12:00:00+00:00", "charge", "-0.045", "42", "-"],
        ["2026-01-03T00:00:00+00:00", "topup", "2.500", "-", "-"],
    ]
    listed = _history(month)
    assert listed[1] == {
        "id": listed[1]["id"],
        "at": "2026-01-01T23:30:00+00:00",
        "kind": "charge",
        "amount": "-1.000",
        "amount_milli": -1000,
        "message_id": "41",
        "note": "",
    }
    assert listed[0]["message_id"] is None and listed[0]["note"] == "invoice 1"
    assert [r["amount"] for r in listed] == ["10.000", "-1.000", "-0.045", "2.500"]
    assert sum(r["amount_milli"] for r in listed) == 11_455  # exactly the balance
    assert json.loads(ok(month("account", "show", "acme", "--json")))["balance_milli"] == 11_455
    assert [r["id"] for r in listed] == sorted(r["id"] for r in listed)


@pytest.mark.parametrize(
    ("args", "kinds_and_amounts"),
    [
        (("--since", "2026-01-02"), [("charge", -45), ("topup", 2500)]),
        (("--until", "2026-01-02"), [("topup", 10_000), ("charge", -1000)]),
        (("--since", "2026-01-02", "--until", "2026-01-03"), [("charge", -45)]),  # excluded
        (("--since", "2026-01-01T23:30:00"), [("charge", -1000), ("charge", -45), ("topup", 2500)]),
        (("--since", "2026-01-01T23:30:01Z"), [("charge", -45), ("topup", 2500)]),
        # 00:30 in Paris is 23:30 UTC the day before
        (("--since", "2026-01-02T00:30:00+01:00", "--until", "2026-01-02"), [("charge", -1000)]),
        (("--until", "2026-01-01T00:00:00"), []),
        (("--since", "2026-01-04"), []),
    ],
)
def test_credit_history_date_range(month, args, kinds_and_amounts):
    assert [(r["kind"], r["amount_milli"]) for r in _history(month, *args)] == kinds_and_amounts


def test_credit_history_of_another_account_and_an_empty_one(month):
    (bob,) = json.loads(ok(month("account", "credit", "history", "bob", "--json")))
    assert (bob["kind"], bob["amount"], bob["at"]) == (
        "topup",
        "99.000",
        "2026-01-02T00:00:00+00:00",
    )
    ok(month("account", "add", "carol", "--password", "pw"))
    assert json.loads(ok(month("account", "credit", "history", "carol", "--json"))) == []
    assert rows(ok(month("account", "credit", "history", "carol"))) == [
        ["at", "kind", "amount", "message_id", "note"]
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "--since 'yesterday': not a date (2026-01-31)"),
        (("--until", "2026-02-30"), "--until '2026-02-30': not a date"),
        (("--since", "2026-01-31T25:00"), "--since '2026-01-31T25:00'"),
        (("--since", "2026-01-02", "--until", "2026-01-02"), "--until must be after --since"),
        (("--since", "2026-01-03", "--until", "2026-01-02"), "--until must be after --since"),
    ],
)
def test_credit_history_bad_dates_are_one_line(month, args, message):
    fails(month("account", "credit", "history", "acme", *args), message)


def test_credit_history_of_no_account(ready):
    fails(ready("account", "credit", "history", "ghost"), "no account ghost")


# -- tariff ---------------------------------------------------------------------------------


def test_tariff_list_shows_the_built_in_default(ready, store):
    assert rows(ok(ready("tariff", "list"))) == [
        ["prefix", "price", "source"],
        ["default", "1.000", "built-in"],
    ]
    assert json.loads(ok(ready("tariff", "list", "--json"))) == [
        {"prefix": "default", "price": "1.000", "price_milli": 1000, "source": "built-in"}
    ]
    assert _prices(store) == {}


def test_tariff_set_list_and_remove(ready, store):
    assert ok(ready("tariff", "set", "3366", "0.05")) == "price of prefix 3366: 0.050 a part\n"
    assert ok(ready("tariff", "set", "+33", "0.8")) == "price of prefix 33: 0.800 a part\n"
    assert ok(ready("tariff", "set", "3366", "0.045")) == (
        "price of prefix 3366: 0.045 a part (was 0.050)\n"
    )
    assert ok(ready("tariff", "set", "44", "0")) == "price of prefix 44: 0.000 a part\n"
    assert _prices(store) == {"33": 800, "3366": 45, "44": 0}
    assert rows(ok(ready("tariff", "list"))) == [
        ["prefix", "price", "source"],
        ["default", "1.000", "built-in"],
        ["33", "0.800", "tariff"],
        ["3366", "0.045", "tariff"],
        ["44", "0.000", "tariff"],
    ]
    with store.connect() as conn:
        price = credit.tariff(conn).price
    assert (price("33661234567"), price("33712345678"), price("4479"), price("49")) == (
        45,
        800,
        0,
        1000,
    )
    assert ok(ready("tariff", "remove", "3366")) == "price of prefix 3366 removed\n"
    assert _prices(store) == {"33": 800, "44": 0}
    fails(ready("tariff", "remove", "3366"), "no price set for prefix 3366")


def test_tariff_default(ready, store):
    assert ok(ready("tariff", "set", "default", "1.25")) == "price of the default: 1.250 a part\n"
    ok(ready("tariff", "set", "33", "0.5"))
    assert _prices(store) == {"": 1250, "33": 500}
    assert json.loads(ok(ready("tariff", "list", "--json"))) == [
        {"prefix": "default", "price": "1.250", "price_milli": 1250, "source": "tariff"},
        {"prefix": "33", "price": "0.500", "price_milli": 500, "source": "tariff"},
    ]
    with store.connect() as conn:
        assert credit.tariff(conn).price("4479") == 1250
    assert ok(ready("tariff", "set", "default", "0")) == (
        "price of the default: 0.000 a part (was 1.250)\n"
    )
    assert ok(ready("tariff", "remove", "default")) == (
        "price of the default removed: back to the built-in 1.000\n"
    )
    assert _prices(store) == {"33": 500}
    assert rows(ok(ready("tariff", "list")))[1] == ["default", "1.000", "built-in"]
    fails(ready("tariff", "remove", "default"), "no price set for the default")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "33a", "1"), "prefix '33a' is not 1 to 15 E.164 digits (or the word default)"),
        (("set", "", "1"), "is not 1 to 15 E.164 digits"),
        (("set", "1234567890123456", "1"), "is not 1 to 15 E.164 digits"),
        (("set", "Default", "1"), "prefix 'Default' is not"),
        (("set", "33", "-1"), "price '-1' is negative"),
        (("set", "33", "cheap"), "price 'cheap' is not a number"),
        (("set", "33", "0.0001"), "price '0.0001': at most three decimals"),
        (("set", "33", "1e13"), "at most 1000000000000.000"),
        (("remove", "3x"), "prefix '3x' is not"),
    ],
)
def test_tariff_errors_are_one_line_and_change_nothing(ready, store, args, message):
    fails(ready("tariff", *args), message)
    assert _prices(store) == {}
