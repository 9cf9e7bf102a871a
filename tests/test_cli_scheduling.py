"""The admin commands of scheduling, in process with click's CliRunner on a temp store:
`account set` with the traffic kind, sending hours and validity bounds; `message cancel`;
`queue cancel --account A [--service-type T]`."""

import json

import pytest
from sqlalchemy import select

from smsc import cli
from smsc.store import accounts, db, messages, schema
from smsc.store.messages import COLUMNS, State

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
DEFAULTS = {
    "traffic": "transactional",
    "sending_hours": "mon-sat 08:00-21:30",
    "timezone": "Europe/Paris",
    "holidays": "fr",
    "validity": 172800,
    "max_validity": 604800,
}


@pytest.fixture
def ready(smsc):
    """A store at head with two accounts, acme and bob."""
    assert smsc("db", "upgrade").exit_code == 0
    for name in ("acme", "bob"):
        assert smsc("account", "add", name, "--password", "s3cret").exit_code == 0
    return smsc


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    assert "Error" not in result.stderr, result.stderr
    return result.stdout


def fails(result, message: str) -> None:
    """A one-line error on stderr, nothing on stdout, a non-zero exit."""
    assert result.exit_code != 0, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and message in lines[0], lines[0]


def shown(run, system_id="acme") -> dict:
    return json.loads(ok(run("account", "show", system_id, "--json")))


def scheduling(account: dict) -> dict:
    return {k: account[k] for k in DEFAULTS}


# -- account set --------------------------------------------------------------------------------


def test_an_account_starts_transactional_with_the_charter_hours_and_default_bounds(ready):
    assert scheduling(shown(ready)) == DEFAULTS
    listed = json.loads(ok(ready("account", "list", "--json")))
    assert [scheduling(a) for a in listed] == [DEFAULTS, DEFAULTS]


def test_account_set_marketing_hours_zone_holidays_and_validity(ready, db_url):
    out = ok(
        ready(
            "account", "set", "acme", "--marketing",
            "--sending-hours", "mon-fri 09:00-12:00,14:00-20:00; sat 10:00-18:00",
            "--timezone", "America/Martinique", "--holidays", "none",
            "--validity", "3600", "--max-validity", "86400",
        )
    )  # fmt: skip
    assert out == "account acme changed\n"
    assert scheduling(shown(ready)) == {
        "traffic": "marketing",
        "sending_hours": "mon-fri 09:00-12:00,14:00-20:00; sat 10:00-18:00",
        "timezone": "America/Martinique",
        "holidays": "none",
        "validity": 3600,
        "max_validity": 86400,
    }
    assert scheduling(shown(ready, "bob")) == DEFAULTS  # only acme changed
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            acme = accounts.get(conn, "acme")
    finally:
        engine.dispose()
    assert (acme.marketing, acme.default_validity, acme.max_validity) == (True, 3600, 86400)

    # One setting at a time; the others stay.
    ok(ready("account", "set", "acme", "--transactional"))
    assert shown(ready)["traffic"] == "transactional"
    assert shown(ready)["sending_hours"] == "mon-fri 09:00-12:00,14:00-20:00; sat 10:00-18:00"
    ok(ready("account", "set", "acme", "--marketing", "--holidays", "fr"))
    assert scheduling(shown(ready))["traffic"] == "marketing"
    assert shown(ready)["holidays"] == "fr"
    ok(ready("account", "set", "acme", "--validity", "86400"))  # up to the maximum
    assert (shown(ready)["validity"], shown(ready)["max_validity"]) == (86400, 86400)


def test_account_show_as_a_table_has_the_scheduling_settings(ready):
    ok(ready("account", "set", "acme", "--marketing", "--sending-hours", "never"))
    lines = ok(ready("account", "show", "acme")).splitlines()
    table = dict(line.split(None, 1) for line in lines)
    assert table["traffic"] == "marketing"
    assert table["sending_hours"] == "never"
    assert table["validity"] == "172800"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mon-sat 8h-21h", "bad time '8h'"),
        ("funday 08:00-09:00", "unknown day 'funday'"),
        ("mon 10:00-09:00", "must end after it starts"),
        ("mon 08:00-25:00", "bad time '25:00'"),
        ("sat-mon 08:00-09:00", "runs backwards"),
        ("mon 08:00-12:00,11:00-13:00", "overlap"),
        ("mon-fri", "no time window"),
        ("mon 08:00-09:00;", "empty clause"),
        ("mon 08:00-09:00; tz=Asia/Tokyo", "contradicts"),  # the account's zone is Paris
    ],
)
def test_a_bad_sending_hours_spec_is_a_one_line_error_and_changes_nothing(ready, spec, message):
    fails(ready("account", "set", "acme", "--marketing", "--sending-hours", spec), message)
    assert scheduling(shown(ready)) == DEFAULTS  # not even --marketing


def test_a_bad_time_zone_is_a_one_line_error(ready):
    fails(ready("account", "set", "acme", "--timezone", "Europe/Lutece"), "unknown time zone")
    assert shown(ready)["timezone"] == "Europe/Paris"


def test_a_zone_given_both_ways_must_agree(ready):
    spec = "mon-fri 09:00-18:00; tz=Asia/Tokyo"
    ok(ready("account", "set", "acme", "--sending-hours", spec, "--timezone", "Asia/Tokyo"))
    assert (shown(ready)["sending_hours"], shown(ready)["timezone"]) == (spec, "Asia/Tokyo")


def test_an_unknown_holiday_calendar_is_refused(ready):
    result = ready("account", "set", "acme", "--holidays", "uk")
    assert result.exit_code == 2 and "'uk' is not one of 'fr', 'none'" in result.stderr
    assert shown(ready)["holidays"] == "fr"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--validity", "7200", "--max-validity", "3600"], "cannot be longer than the maximum"),
        (["--validity", "700000"], "cannot be longer than the maximum"),  # max 604800
        (["--max-validity", "3600"], "cannot be longer than the maximum"),  # default 172800
        (["--validity", "0"], "--validity must be more than 0 seconds"),
        (["--max-validity", "-5"], "--max-validity must be more than 0 seconds"),
    ],
)
def test_validity_bounds_are_checked(ready, args, message):
    fails(ready("account", "set", "acme", *args), message)
    assert scheduling(shown(ready)) == DEFAULTS


def test_account_set_on_an_unknown_account(ready):
    fails(ready("account", "set", "zed", "--marketing"), "no account zed")


# -- messages in the store ----------------------------------------------------------------------


def insert(db_url, rows: list[dict]) -> None:
    """Rows for acme unless `account` says otherwise; ids from 1 unless given."""
    engine = db.make_engine(db_url)
    try:
        with db.writing(engine) as conn:
            owners = {a.system_id: a.id for a in accounts.all_accounts(conn)}
            first = messages.next_id(conn)
            values = []
            for i, changes in enumerate(rows):
                changes = dict(changes)
                row = dict(
                    id=first + i,
                    account_id=owners[changes.pop("account", "acme")],
                    service_type="",
                    source_ton=1,
                    source_npi=1,
                    source="33600000001",
                    destination="33600000002",
                    esm_class=0,
                    protocol_id=0,
                    priority=0,
                    registered_delivery=1,
                    data_coding=0,
                    body=b"hello",
                    tlvs=b"",
                    submitted_at=NOW,
                    due_at=NOW,
                    expires_at=NOW + 86400,
                    state=State.ACCEPTED.value,
                    updated_at=NOW,
                    origin=0,
                    multi_id=None,
                )
                row.update(changes)
                values.append(tuple(row.get(c) for c in COLUMNS))
            messages.insert_rows(conn, values)
    finally:
        engine.dispose()


def states(db_url) -> dict[int, str]:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            m = schema.messages
            return dict(conn.execute(select(m.c.id, m.c.state).order_by(m.c.id)).all())
    finally:
        engine.dispose()


# -- message cancel -----------------------------------------------------------------------------


def test_message_cancel_a_waiting_message(ready, db_url):
    insert(db_url, [{}, {"due_at": NOW + 30 * 86400, "expires_at": NOW + 31 * 86400}, {}])
    assert ok(ready("message", "cancel", "1")) == "cancelled 1 message\n"
    assert ok(ready("message", "cancel", "2")) == "cancelled 1 message\n"  # scheduled a month on
    assert states(db_url) == {1: "DELETED", 2: "DELETED", 3: "ACCEPTED"}
    assert json.loads(ok(ready("message", "show", "2", "--json")))["state"] == "DELETED"


@pytest.mark.parametrize("state", ["SENDING", "ENROUTE", "DELIVERED", "EXPIRED", "DELETED"])
def test_message_cancel_too_late(ready, db_url, state):
    insert(db_url, [{"state": state}])
    fails(ready("message", "cancel", "1"), f"message 1 is {state}: too late to cancel")
    assert states(db_url) == {1: state}


def test_message_cancel_a_submit_multi_cancels_its_waiting_rows(ready, db_url):
    insert(
        db_url,
        [
            {"multi_id": 1, "destination": "33600000011"},
            {"multi_id": 1, "destination": "33600000012"},
            {"multi_id": 1, "destination": "33600000013", "state": "ENROUTE"},  # gone already
            {"multi_id": 1, "destination": "33600000014"},
            {"destination": "33600000015"},  # not part of it
        ],
    )
    assert ok(ready("message", "cancel", "1")) == "cancelled 3 messages\n"
    assert states(db_url) == {1: "DELETED", 2: "DELETED", 3: "ENROUTE", 4: "DELETED", 5: "ACCEPTED"}
    fails(ready("message", "cancel", "1"), "message 1 is DELETED: too late to cancel")


@pytest.mark.parametrize(
    ("message_id", "message"),
    [
        ("42", "no message 42"),
        ("abc", "'abc' is not a message id"),
        ("1.5", "'1.5' is not a message id"),
        ("²", "'²' is not a message id"),
        ("99999999999999999999", "no message 99999999999999999999"),
    ],
)
def test_message_cancel_of_no_message(ready, db_url, message_id, message):
    insert(db_url, [{}])
    fails(ready("message", "cancel", message_id), message)
    assert states(db_url) == {1: "ACCEPTED"}


# -- queue cancel -------------------------------------------------------------------------------


def test_queue_cancel_an_accounts_waiting_messages(ready, db_url):
    later = {"due_at": NOW + 7 * 86400, "expires_at": NOW + 8 * 86400}  # scheduled
    insert(
        db_url,
        [
            {"service_type": "PROMO"},  # 1
            {"service_type": "PROMO", **later},  # 2
            {"service_type": "CMT"},  # 3
            {"service_type": "", **later},  # 4
            {"service_type": "PROMO", "state": "SENDING"},  # 5: on its way
            {"service_type": "PROMO", "state": "ENROUTE"},  # 6
            {"service_type": "PROMO", "state": "DELIVERED"},  # 7
            {"service_type": "PROMO", "account": "bob"},  # 8: another account's
            {"service_type": "PROMO", "account": "bob", **later},  # 9
        ],
    )
    out = ok(ready("queue", "cancel", "--account", "acme", "--service-type", "PROMO"))
    assert out == "cancelled 2 messages of acme\n"
    assert states(db_url) == {
        1: "DELETED", 2: "DELETED", 3: "ACCEPTED", 4: "ACCEPTED", 5: "SENDING",
        6: "ENROUTE", 7: "DELIVERED", 8: "ACCEPTED", 9: "ACCEPTED",
    }  # fmt: skip
    assert ok(ready("queue", "cancel", "--account", "acme")) == "cancelled 2 messages of acme\n"
    assert [s for i, s in states(db_url).items() if i in (3, 4)] == ["DELETED", "DELETED"]
    assert ok(ready("queue", "cancel", "--account", "acme")) == "cancelled 0 messages of acme\n"
    assert states(db_url)[8] == states(db_url)[9] == "ACCEPTED"
    stats = json.loads(ok(ready("queue", "stats", "--json")))
    counts = {s["state"]: s["messages"] for s in stats}
    assert (counts["DELETED"], counts["ACCEPTED"]) == (4, 2)


def test_queue_cancel_in_chunks(ready, db_url, monkeypatch):
    """More than one chunk of 5,000, and a service_type that matches none."""
    monkeypatch.setattr(cli, "_terminal", lambda: True)  # stderr a terminal: a progress bar
    insert(db_url, [{"due_at": NOW + i} for i in range(12_345)] + [{"account": "bob"}])
    result = ready("queue", "cancel", "--account", "acme", "--service-type", "NONE")
    assert result.stdout == "cancelled 0 messages of acme\n"
    result = ready("queue", "cancel", "--account", "acme")
    assert result.exit_code == 0 and result.stdout == "cancelled 12345 messages of acme\n"
    assert "cancelling" in result.stderr  # the progress bar goes to stderr
    counts = {}
    for s in states(db_url).values():
        counts[s] = counts.get(s, 0) + 1
    assert counts == {"DELETED": 12_345, "ACCEPTED": 1}


def test_queue_cancel_in_a_script_has_no_progress_bar(ready, db_url):
    insert(db_url, [{"due_at": NOW + i} for i in range(3)])
    assert ok(ready("queue", "cancel", "--account", "acme")) == "cancelled 3 messages of acme\n"


def test_queue_cancel_of_an_unknown_account(ready):
    fails(ready("queue", "cancel", "--account", "zed"), "no account zed")


def test_queue_cancel_needs_an_account(ready):
    result = ready("queue", "cancel")
    assert result.exit_code == 2 and "Missing option '--account'" in result.stderr
