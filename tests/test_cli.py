"""The admin CLI, in process with click's CliRunner, on a temp store named by a temp config."""

import json
import re

import click
import pytest
from click.testing import CliRunner

from smsc import cli
from smsc.store import accounts, db, messages
from smsc.store.messages import COLUMNS, State

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def fails(result, message: str) -> None:
    """A one-line error on stderr, nothing on stdout, a non-zero exit."""
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and message in lines[0], lines[0]


def _account(db_url, system_id):
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            return accounts.get(conn, system_id)
    finally:
        engine.dispose()


# -- db -------------------------------------------------------------------------------------


def test_db_upgrade(smsc, db_url):
    head = db.revisions(db.make_engine(db_url))[1]
    assert ok(smsc("db", "upgrade")) == f"schema at {head} (was empty)\n"
    assert ok(smsc("db", "upgrade")) == f"schema at {head}\n"
    engine = db.make_engine(db_url)
    db.check_schema(engine)
    engine.dispose()


@pytest.mark.parametrize(
    "args",
    [
        ("account", "list"),
        ("account", "show", "acme"),
        ("account", "add", "acme", "--password", "pw"),
        ("account", "set", "acme", "--tps", "1"),
        ("account", "remove", "acme"),
        ("message", "show", "1"),
        ("queue", "stats"),
    ],
)
def test_schema_behind_is_one_line(smsc, args):
    fails(smsc(*args), "run `smsc db upgrade`")


def test_config_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[smpp]\nprot = 1\n")
    result = CliRunner().invoke(cli.main, ["--config", str(bad), "queue", "stats"])
    fails(result, "smpp.prot: unknown key")
    result = CliRunner().invoke(cli.main, ["--config", str(tmp_path / "no.toml"), "db", "upgrade"])
    fails(result, "no.toml")


def test_config_from_the_environment(config, fast_scrypt):
    runner = CliRunner(env={"SMSC_CONFIG": str(config)})
    assert ok(runner.invoke(cli.main, ["db", "upgrade"])).startswith("schema at")


# -- accounts -------------------------------------------------------------------------------


def test_account_add_and_list(ready):
    assert (
        ok(ready("account", "add", "shop", "--password", "pw", "--tps", "50", "--max-binds", "4"))
        == "account shop added\n"
    )
    lines = ok(ready("account", "list")).splitlines()
    assert lines[0].split() == ["system_id", "enabled", "max_binds", "tps", "created_at"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["acme", "True", "10", "0"],
        ["shop", "True", "4", "50"],
    ]
    listed = json.loads(ok(ready("account", "list", "--json")))
    assert [(a["system_id"], a["enabled"], a["max_binds"], a["tps"]) for a in listed] == [
        ("acme", True, 10, 0),
        ("shop", True, 4, 50),
    ]
    assert listed[0]["created_at"].endswith("+00:00")
    assert "s3cret" not in json.dumps(listed) and "password" not in json.dumps(listed)


def test_account_list_empty(smsc):
    ok(smsc("db", "upgrade"))
    assert json.loads(ok(smsc("account", "list", "--json"))) == []
    assert ok(smsc("account", "list")).split() == [
        "system_id",
        "enabled",
        "max_binds",
        "tps",
        "created_at",
    ]


def test_account_show(ready):
    shown = json.loads(ok(ready("account", "show", "acme", "--json")))
    assert {k: shown[k] for k in ("system_id", "enabled", "max_binds", "tps")} == {
        "system_id": "acme",
        "enabled": True,
        "max_binds": 10,
        "tps": 0,
    }
    table = dict(line.split(None, 1) for line in ok(ready("account", "show", "acme")).splitlines())
    assert table["system_id"] == "acme" and table["tps"] == "0"


def test_account_set(ready, db_url):
    before = _account(db_url, "acme")
    assert (
        ok(ready("account", "set", "acme", "--tps", "100", "--max-binds", "3", "--disable"))
        == "account acme changed\n"
    )
    after = _account(db_url, "acme")
    assert (after.tps, after.max_binds, after.enabled) == (100, 3, False)
    assert after.password_hash == before.password_hash
    ok(ready("account", "set", "acme", "--enable"))
    assert _account(db_url, "acme").enabled is True
    ok(ready("account", "set", "acme", "--password", "n3w"))
    after = _account(db_url, "acme")
    assert accounts.verify_password("n3w", after.password_hash)
    assert (after.tps, after.max_binds, after.enabled) == (100, 3, True)


def test_account_passwd(ready, db_url):
    result = ready("account", "passwd", "acme", input="n3w\nn3w\n")
    assert result.exit_code == 0, result.output
    assert "password of acme changed" in result.stdout
    assert "n3w" not in result.output  # hidden input
    assert accounts.verify_password("n3w", _account(db_url, "acme").password_hash)
    ok(ready("account", "passwd", "acme", "--password", "other"))
    assert accounts.verify_password("other", _account(db_url, "acme").password_hash)


def test_account_passwd_mismatch(ready, db_url):
    before = _account(db_url, "acme").password_hash
    result = ready("account", "passwd", "acme", input="one\ntwo\n")
    assert result.exit_code != 0
    assert _account(db_url, "acme").password_hash == before


def test_account_remove(ready):
    assert ok(ready("account", "remove", "acme")) == "account acme removed\n"
    assert json.loads(ok(ready("account", "list", "--json"))) == []


def test_account_reply_url_set_shown_and_removed(ready):
    url = "https://acme.example/sms-replies"
    ok(ready("account", "set", "acme", "--reply-url", url))
    assert json.loads(ok(ready("account", "show", "acme", "--json")))["reply_url"] == url
    fails(ready("account", "set", "acme", "--reply-url", "ftp://acme.example/"), "--reply-url")
    ok(ready("account", "set", "acme", "--reply-url", ""))
    assert re.search(r"^reply_url +-$", ok(ready("account", "show", "acme")), re.M)


def test_account_remove_takes_its_registrations_with_it(ready):
    ok(ready("account", "set", "acme", "--sender", "ACME"))
    ok(ready("account", "token", "add", "acme"))
    ok(ready("account", "email", "add", "acme", "ops@acme.example"))
    assert ok(ready("account", "remove", "acme")) == "account acme removed\n"
    assert json.loads(ok(ready("account", "email", "list", "--json"))) == []
    ok(ready("account", "add", "acme", "--password", "s3cret"))  # a new one starts bare
    assert json.loads(ok(ready("account", "token", "list", "acme", "--json"))) == []


def test_account_remove_refuses_an_account_with_credit_history(ready):
    ok(ready("account", "credit", "add", "acme", "10"))
    fails(ready("account", "remove", "acme"), "has credit history in the store")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("account", "add", "acme", "--password", "pw"), "account acme exists already"),
        (("account", "add", "new", "--password", "123456789"), "password must be 1 to 8"),
        (("account", "add", "new", "--password", ""), "password must be 1 to 8"),
        (("account", "add", "x" * 16, "--password", "pw"), "system_id must be 1 to 15"),
        (("account", "add", "new", "--password", "pw", "--tps", "-1"), "--tps"),
        (("account", "add", "new", "--password", "pw", "--max-binds", "0"), "--max-binds"),
        (("account", "set", "acme", "--password", "123456789"), "password must be 1 to 8"),
        (("account", "show", "ghost"), "no account ghost"),
        (("account", "set", "ghost", "--tps", "1"), "no account ghost"),
        (("account", "passwd", "ghost", "--password", "pw"), "no account ghost"),
        (("account", "remove", "ghost"), "no account ghost"),
        (("message", "show", "1"), "no message 1"),
        (("message", "show", "abc"), "is not a message id"),
    ],
)
def test_errors_are_one_line(ready, args, message):
    fails(ready(*args), message)


def test_account_set_without_a_change_is_refused(ready):
    result = ready("account", "set", "acme")
    assert result.exit_code == 2 and "nothing to change" in result.stderr


def test_an_unreachable_store_is_one_line(tmp_path):
    config = tmp_path / "smsc.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/no/such/dir/smsc.db"\n')
    result = CliRunner().invoke(cli.main, ["--config", str(config), "db", "upgrade"])
    fails(result, "store: unable to open database file")


def test_failed_add_leaves_nothing(ready):
    ready("account", "add", "new", "--password", "123456789")
    listed = json.loads(ok(ready("account", "list", "--json")))
    assert [a["system_id"] for a in listed] == ["acme"]


# -- messages and the queue ----------------------------------------------------------------


def _insert(db_url, *states: State) -> None:
    engine = db.make_engine(db_url)
    try:
        with db.writing(engine) as conn:
            owner = accounts.get(conn, "acme").id
            rows = []
            for i, state in enumerate(states, 1):
                row = dict(
                    id=i,
                    account_id=owner,
                    service_type="CMT",
                    source_ton=5,
                    source_npi=0,
                    source="ACME",
                    destination="33612345678",
                    esm_class=0,
                    protocol_id=0,
                    priority=0,
                    registered_delivery=1,
                    data_coding=0,
                    body=b"hello",
                    tlvs=b"",
                    submitted_at=NOW,
                    due_at=NOW + 60,
                    expires_at=NOW + 3600,
                    state=state.value,
                    updated_at=NOW,
                    origin=0,
                    multi_id=None,
                )
                rows.append(tuple(row.get(c) for c in COLUMNS))
            messages.insert_rows(conn, rows)
    finally:
        engine.dispose()


def test_message_show(ready, db_url):
    _insert(db_url, State.ACCEPTED)
    shown = json.loads(ok(ready("message", "show", "1", "--json")))
    assert {k: shown[k] for k in ("id", "account", "state", "source", "destination")} == {
        "id": "1",
        "account": "acme",
        "state": "ACCEPTED",
        "source": "ACME",
        "destination": "33612345678",
    }
    assert shown["submitted_at"]["utc"] == "2026-01-01T00:00:00+00:00"
    assert shown["due_at"]["epoch"] == NOW + 60
    assert shown["carrier"] is None and shown["error"] is None and shown["parts"] == []
    assert "hello" not in json.dumps(shown)  # the text is not shown
    lines = ok(ready("message", "show", "1")).splitlines()
    table = dict((line.split(None, 1) + [""])[:2] for line in lines if line)  # empty values too
    assert table["state"] == "ACCEPTED" and table["destination"] == "33612345678"
    assert table["accepted"] == "2026-01-01 00:00:00 UTC (01:00:00 Europe/Paris)"


def test_queue_stats(ready, db_url):
    _insert(db_url, State.ACCEPTED, State.ACCEPTED, State.DELIVERED, State.DELETED)
    stats = json.loads(ok(ready("queue", "stats", "--json")))
    assert [s["state"] for s in stats] == [s.value for s in State]
    counts = {s["state"]: s["messages"] for s in stats}
    assert counts == {s.value: 0 for s in State} | {"ACCEPTED": 2, "DELIVERED": 1, "DELETED": 1}
    table = [line.split() for line in ok(ready("queue", "stats")).splitlines()]
    assert table[0] == ["state", "messages"]
    assert ["ACCEPTED", "2"] in table and ["SENDING", "0"] in table


# -- help -----------------------------------------------------------------------------------


def _commands(group: click.Group, path=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield (*path, name)
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


@pytest.mark.parametrize("path", [(), *_commands(cli.main)], ids=" ".join)
def test_help_has_an_example(path):
    result = CliRunner().invoke(cli.main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.stdout
    example = result.stdout.split("Example:", 1)[1]
    assert re.search(r"^\s+smsc (--config \S+ )?" + re.escape(" ".join(path)), example, re.M)


def test_every_issue_command_exists():
    assert set(_commands(cli.main)) >= {
        ("serve",),
        ("db", "upgrade"),
        *(("account", c) for c in ("add", "list", "show", "set", "remove", "passwd")),
        ("message", "show"),
        ("queue", "stats"),
    }
