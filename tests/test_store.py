"""Accounts and message operations on a real SQLite store upgraded by the migrations."""

import hashlib

import pytest
from sqlalchemy import insert, select

from smsc.accept import check_body
from smsc.protocol.constants import Status
from smsc.store import accounts, messages, schema
from smsc.store.accounts import AccountError
from smsc.store.db import writing
from smsc.store.messages import COLUMNS, State

NOW = 1_767_225_600.0


@pytest.fixture
def conn(engine):
    with writing(engine) as conn:
        yield conn


def _account(conn, system_id="acme") -> int:
    """An account row without paying for a password hash."""
    result = conn.execute(
        insert(schema.accounts).values(
            system_id=system_id,
            password_hash="scrypt$not$a$real$hash$",
            max_binds=10,
            tps=0,
            enabled=True,
            created_at=NOW,
        )
    )
    return result.inserted_primary_key[0]


def _message(
    conn,
    message_id,
    account_id,
    *,
    destination="33612345678",
    source="36000",
    service_type="",
    state=State.ACCEPTED,
    due_at=NOW,
    expires_at=NOW + 3600,
    data_coding=0,
    multi_id=None,
):
    row = dict(
        id=message_id,
        account_id=account_id,
        service_type=service_type,
        source_ton=0,
        source_npi=0,
        source=source,
        destination=destination,
        esm_class=0,
        protocol_id=0,
        priority=0,
        registered_delivery=1,
        data_coding=data_coding,
        body=b"hello",
        tlvs=b"",
        submitted_at=NOW,
        due_at=due_at,
        expires_at=expires_at,
        state=state.value,
        updated_at=NOW,
        origin=0,
        multi_id=multi_id,
    )
    messages.insert_rows(conn, [tuple(row.get(c) for c in COLUMNS)])
    return message_id


def _states(conn) -> dict[int, str]:
    return dict(conn.execute(select(schema.messages.c.id, schema.messages.c.state)).all())


# -- passwords ------------------------------------------------------------------------------


def test_password_hash_is_scrypt_and_never_clear():
    stored = accounts.hash_password("s3cret")
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert "s3cret" not in stored and b"s3cret".hex() not in stored
    expected = hashlib.scrypt(b"s3cret", salt=bytes.fromhex(salt), n=16384, r=8, p=1)
    assert digest == expected.hex()
    assert accounts.verify_password("s3cret", stored)
    assert not accounts.verify_password("s3cret!", stored)


def test_hash_is_salted(fast_scrypt):
    one, two = accounts.hash_password("same"), accounts.hash_password("same")
    assert one != two
    assert accounts.verify_password("same", one) and accounts.verify_password("same", two)


@pytest.mark.parametrize("password", ["", "S3cret", "s3cre", "s3cret ", "s3cr\u00e9t"])
def test_verify_wrong(fast_scrypt, password):
    assert not accounts.verify_password(password, accounts.hash_password("s3cret"))


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "s3cret",  # a clear password is no hash
        "bcrypt$16$8$1$00$00",
        "scrypt$16$8$1$00",  # a field short
        "scrypt$16$8$1$00$00$00",
        "scrypt$x$8$1$00$00",
        "scrypt$15$8$1$00$00",  # n not a power of 2
        "scrypt$16$8$1$zz$00",  # salt not hex
        "scrypt$16$8$1$00$zz",  # digest not hex
        "scrypt$16$8$1$00$\u00e9\u00e9",  # non-ASCII digest
        "scrypt$99999999999999999999$8$1$00$00",  # n beyond a C integer
        "scrypt$-16$8$1$00$00",
        "scrypt$16$0$1$00$00",
    ],
)
def test_verify_garbage_hash_is_false(stored):
    assert accounts.verify_password("s3cret", stored) is False


# -- accounts -------------------------------------------------------------------------------


def test_add_and_get(conn, fast_scrypt):
    added = accounts.add(conn, "acme", "s3cret", NOW, max_binds=4, tps=50)
    assert added == accounts.get(conn, "acme") == accounts.by_id(conn, added.id)
    assert (added.system_id, added.max_binds, added.tps, added.enabled, added.created_at) == (
        "acme",
        4,
        50,
        True,
        NOW,
    )
    assert accounts.verify_password("s3cret", added.password_hash)
    assert "s3cret" not in added.password_hash


def test_add_defaults(conn, fast_scrypt):
    added = accounts.add(conn, "acme", "pw", NOW)
    assert (added.max_binds, added.tps, added.enabled) == (accounts.DEFAULT_MAX_BINDS, 0, True)


def test_get_unknown(conn):
    assert accounts.get(conn, "nobody") is None
    with pytest.raises(AccountError, match="no account nobody"):
        accounts.require(conn, "nobody")


def test_add_duplicate(conn, fast_scrypt):
    accounts.add(conn, "acme", "pw", NOW)
    with pytest.raises(AccountError, match="exists already"):
        accounts.add(conn, "acme", "other", NOW)


@pytest.mark.parametrize(
    ("system_id", "password", "kw", "match"),
    [
        ("", "pw", {}, "system_id"),
        ("a" * 16, "pw", {}, "system_id"),
        ("ac\tme", "pw", {}, "system_id"),
        ("acme", "", {}, "password"),
        ("acme", "123456789", {}, "password"),
        ("acme", "pw", {"max_binds": 0}, "max-binds"),
        ("acme", "pw", {"tps": -1}, "tps"),
    ],
)
def test_add_refuses_bad_values(conn, system_id, password, kw, match):
    with pytest.raises(AccountError, match=match):
        accounts.add(conn, system_id, password, NOW, **kw)
    assert accounts.all_accounts(conn) == []


def test_longest_values_fit(conn, fast_scrypt):
    added = accounts.add(conn, "a" * 15, "12345678", NOW)
    assert accounts.verify_password("12345678", added.password_hash)


def test_all_accounts_sorted(conn):
    for name in ("zeta", "acme", "mid"):
        _account(conn, name)
    assert [a.system_id for a in accounts.all_accounts(conn)] == ["acme", "mid", "zeta"]


def test_change(conn, fast_scrypt):
    before = accounts.add(conn, "acme", "old", NOW)
    after = accounts.change(conn, "acme", tps=100, max_binds=2, enabled=False)
    assert (after.tps, after.max_binds, after.enabled) == (100, 2, False)
    assert after.password_hash == before.password_hash
    assert accounts.change(conn, "acme", enabled=True).enabled is True
    assert accounts.change(conn, "acme", tps=0).tps == 0  # 0 is a value, not "unchanged"
    after = accounts.change(conn, "acme", password="new")
    assert after.password_hash != before.password_hash
    assert accounts.verify_password("new", after.password_hash)
    assert not accounts.verify_password("old", after.password_hash)
    assert (after.tps, after.max_binds, after.enabled) == (0, 2, True)


def test_change_nothing(conn):
    _account(conn)
    before = accounts.get(conn, "acme")
    assert accounts.change(conn, "acme") == before


def test_change_refuses(conn):
    _account(conn)
    with pytest.raises(AccountError, match="no account ghost"):
        accounts.change(conn, "ghost", tps=1)
    with pytest.raises(AccountError, match="password"):
        accounts.change(conn, "acme", password="far too long")
    with pytest.raises(AccountError, match="max-binds"):
        accounts.change(conn, "acme", max_binds=0)


def test_remove(conn):
    _account(conn, "acme")
    _account(conn, "other")
    accounts.remove(conn, "acme")
    assert accounts.get(conn, "acme") is None
    assert accounts.get(conn, "other") is not None
    with pytest.raises(AccountError, match="no account acme"):
        accounts.remove(conn, "acme")


def test_remove_with_history_is_refused(conn):
    account_id = _account(conn)
    _message(conn, 1, account_id, state=State.DELIVERED)
    with pytest.raises(AccountError, match="--disable"):
        accounts.remove(conn, "acme")
    assert accounts.get(conn, "acme") is not None


# -- messages -------------------------------------------------------------------------------


def test_next_id_and_get(conn):
    assert messages.next_id(conn) == 1
    account_id = _account(conn)
    _message(conn, 41, account_id, source="ACME", service_type="CMT")
    assert messages.next_id(conn) == 42
    message = messages.get(conn, 41)
    assert message.id == 41 and message.account_id == account_id
    assert (message.source, message.service_type, message.body) == ("ACME", "CMT", b"hello")
    assert message.state == State.ACCEPTED
    assert messages.get(conn, 40) is None


def test_cancel_by_id(conn):
    mine, theirs = _account(conn, "mine"), _account(conn, "theirs")
    _message(conn, 1, mine)
    _message(conn, 2, mine)
    _message(conn, 3, theirs)
    assert messages.cancel(conn, mine, NOW + 5, message_id=3) == 0  # not its own
    assert messages.cancel(conn, mine, NOW + 5, message_id=1) == 1
    assert _states(conn) == {1: "DELETED", 2: "ACCEPTED", 3: "ACCEPTED"}
    assert messages.get(conn, 1).updated_at == NOW + 5
    assert messages.cancel(conn, mine, NOW + 6, message_id=1) == 0  # once
    assert messages.cancel(conn, mine, NOW + 6, message_id=99) == 0


def test_cancel_id_zero_cancels_nothing(conn):
    mine = _account(conn)
    _message(conn, 1, mine)
    assert messages.cancel(conn, mine, NOW, message_id=0) == 0
    assert _states(conn) == {1: "ACCEPTED"}


def test_cancel_by_id_narrowed(conn):
    mine = _account(conn)
    _message(conn, 1, mine, source="36000", service_type="CMT")
    assert messages.cancel(conn, mine, NOW, message_id=1, source="36001") == 0
    assert messages.cancel(conn, mine, NOW, message_id=1, service_type="WAP") == 0
    assert messages.cancel(conn, mine, NOW, message_id=1, destination="33700000000") == 0
    assert messages.cancel(conn, mine, NOW, message_id=1, source="36000", service_type="CMT") == 1


def test_cancel_by_destination(conn):
    mine, theirs = _account(conn, "mine"), _account(conn, "theirs")
    dest, other = "33612345678", "33712345678"
    _message(conn, 1, mine, destination=dest, source="36000", service_type="CMT")
    _message(conn, 2, mine, destination=dest, source="36001", service_type="CMT")
    _message(conn, 3, mine, destination=dest, source="36000", service_type="WAP")
    _message(conn, 4, mine, destination=dest, source="36000", service_type="CMT")
    _message(conn, 5, mine, destination=other, source="36000", service_type="CMT")
    _message(conn, 6, theirs, destination=dest, source="36000", service_type="CMT")
    _message(conn, 7, mine, destination=dest, state=State.ENROUTE)  # left for a carrier
    _message(conn, 8, mine, destination=dest, state=State.DELIVERED)
    _message(conn, 9, mine, destination=dest, state=State.SENDING)
    n = messages.cancel(conn, mine, NOW, destination=dest, source="36000", service_type="CMT")
    assert n == 2
    assert {i for i, s in _states(conn).items() if s == "DELETED"} == {1, 4}
    assert messages.cancel(conn, mine, NOW, destination=dest, source="36001") == 1  # #2
    assert messages.cancel(conn, mine, NOW, destination=dest) == 1  # #3: the last waiting
    states = _states(conn)
    assert [states[i] for i in (5, 6, 7, 8, 9)] == [
        "ACCEPTED",
        "ACCEPTED",
        "ENROUTE",
        "DELIVERED",
        "SENDING",
    ]


def test_cancel_needs_an_id_or_a_destination(conn):
    mine = _account(conn)
    _message(conn, 1, mine)
    with pytest.raises(ValueError):
        messages.cancel(conn, mine, NOW, source="36000", service_type="CMT")
    assert _states(conn) == {1: "ACCEPTED"}


def _replace(conn, account_id, message_id, **kw):
    values = dict(
        source="",
        body=b"new text",
        registered_delivery=0,
        due_at=None,
        expires_at=None,
        check_body=check_body,
    )
    values.update(kw)
    return messages.replace(conn, account_id, message_id, NOW + 10, **values)


def test_replace_keeps_times_when_none(conn):
    mine = _account(conn)
    _message(conn, 1, mine, due_at=NOW + 60, expires_at=NOW + 3600)
    assert _replace(conn, mine, 1, registered_delivery=2) == Status.ROK
    m = messages.get(conn, 1)
    assert (m.body, m.registered_delivery) == (b"new text", 2)
    assert (m.due_at, m.expires_at, m.updated_at) == (NOW + 60, NOW + 3600, NOW + 10)
    assert m.state == State.ACCEPTED


def test_replace_times(conn):
    mine = _account(conn)
    _message(conn, 1, mine, due_at=NOW + 60, expires_at=NOW + 3600)
    assert _replace(conn, mine, 1, due_at=NOW + 600) == Status.ROK
    assert (messages.get(conn, 1).due_at, messages.get(conn, 1).expires_at) == (
        NOW + 600,
        NOW + 3600,
    )
    assert _replace(conn, mine, 1, expires_at=NOW + 7200, source="36000") == Status.ROK
    assert messages.get(conn, 1).expires_at == NOW + 7200


@pytest.mark.parametrize(
    "kw",
    [
        {"due_at": NOW + 7200},  # due after the kept expiry
        {"expires_at": NOW + 30},  # expires before the kept due time
        {"due_at": NOW + 100, "expires_at": NOW + 100},
    ],
)
def test_replace_refuses_expiry_before_due(conn, kw):
    mine = _account(conn)
    _message(conn, 1, mine, due_at=NOW + 60, expires_at=NOW + 3600)
    assert _replace(conn, mine, 1, **kw) == Status.RINVEXPIRY
    m = messages.get(conn, 1)
    assert (m.body, m.due_at, m.expires_at, m.updated_at) == (b"hello", NOW + 60, NOW + 3600, NOW)


def test_replace_refuses(conn):
    mine, theirs = _account(conn, "mine"), _account(conn, "theirs")
    _message(conn, 1, theirs)
    _message(conn, 2, mine, state=State.ENROUTE)
    _message(conn, 3, mine, source="36000")
    assert _replace(conn, mine, 1) == Status.RREPLACEFAIL  # another account's
    assert _replace(conn, mine, 2) == Status.RREPLACEFAIL  # left for a carrier
    assert _replace(conn, mine, 3, source="36001") == Status.RREPLACEFAIL  # another source
    assert _replace(conn, mine, 4) == Status.RREPLACEFAIL  # no such message
    assert {messages.get(conn, i).body for i in (1, 2, 3)} == {b"hello"}


@pytest.mark.parametrize(
    "data_coding, body, status",
    [
        (8, b"\x00A\x00", Status.RINVMSGLEN),  # odd UCS-2
        (0, "é".encode("latin-1"), Status.RINVDCS),  # not a septet
        (8, b"\x00A", Status.ROK),
    ],
)
def test_replace_checks_the_new_text_against_the_coding(conn, data_coding, body, status):
    mine = _account(conn)
    _message(conn, 1, mine, data_coding=data_coding)
    assert _replace(conn, mine, 1, body=body) == status
    assert (messages.get(conn, 1).body == body) == (status == Status.ROK)


def test_count_by_state(conn):
    mine = _account(conn)
    assert messages.count_by_state(conn) == {}
    for i, state in enumerate([State.ACCEPTED] * 3 + [State.DELIVERED, State.DELETED] * 2):
        _message(conn, i + 1, mine, state=state)
    assert messages.count_by_state(conn) == {"ACCEPTED": 3, "DELIVERED": 2, "DELETED": 2}


def test_foreign_key_enforced(conn):
    """A message of no account is refused by the database itself (PRAGMA foreign_keys)."""
    with pytest.raises(Exception, match="(?i)foreign key constraint"):
        _message(conn, 1, 999)


def test_a_submit_multi_is_one_message_to_its_client(conn):
    """Rows sharing a multi_id answer to that id: query, cancel and replace reach them all."""
    mine = _account(conn)
    for i, destination in enumerate(["33611111111", "33622222222", "33633333333"], start=5):
        _message(conn, i, mine, destination=destination, multi_id=5)
    _message(conn, 8, mine)  # a message of its own, next to the group
    assert [m.id for m in messages.by_client_id(conn, 5)] == [5, 6, 7]
    assert [m.id for m in messages.by_client_id(conn, 6)] == [6]
    assert messages.overall(messages.by_client_id(conn, 5)) == (State.ACCEPTED, NOW)
    assert _replace(conn, mine, 5, body=b"all of them") == Status.ROK
    assert {messages.get(conn, i).body for i in (5, 6, 7)} == {b"all of them"}
    assert messages.cancel(conn, mine, NOW + 20, message_id=5) == 3
    assert _states(conn) == {5: "DELETED", 6: "DELETED", 7: "DELETED", 8: "ACCEPTED"}


@pytest.mark.parametrize(
    "states, expected",
    [
        ([State.DELIVERED, State.ENROUTE], State.ENROUTE),  # pending while any one is
        ([State.DELIVERED, State.DELIVERED], State.DELIVERED),
        ([State.DELIVERED, State.EXPIRED, State.REJECTED], State.EXPIRED),  # the first failure
    ],
)
def test_overall_state_of_a_submit_multi(conn, states, expected):
    mine = _account(conn)
    for i, state in enumerate(states, start=1):
        _message(conn, i, mine, state=state, multi_id=1)
    assert messages.overall(messages.by_client_id(conn, 1))[0] == expected
