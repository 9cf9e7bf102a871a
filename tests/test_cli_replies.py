"""The admin commands of subscriber replies, in process with click's CliRunner on a temp store:
an account's senders and identity (`account add/set/show`), and the opt-out list
(`smsc blacklist add/remove/check/import/export/stats`)."""

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from test_cli import fails, ok

from smsc import cli
from smsc.store import db, optouts, schema

NUMBER = "33612345678"
FORMS = ["+33612345678", "0033612345678", "0612345678", "33612345678", "06 12 34 56 78"]


def shown(run, system_id="acme") -> dict:
    return json.loads(ok(run("account", "show", system_id, "--json")))


def table(output: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in output.splitlines())


def store_rows(db_url, query):
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(query).all()
    finally:
        engine.dispose()


# -- account senders and identity -----------------------------------------------------------


def test_account_show_has_the_new_fields(ready):
    account = shown(ready)
    assert {k: account[k] for k in ("senders", "company", "contact", "website")} == {
        "senders": [],
        "company": "",
        "contact": "",
        "website": "",
    }
    assert account["mobile_senders"] is False and account["stop_mention"] == "append"
    rows = table(ok(ready("account", "show", "acme")))
    assert rows["senders"] == "- (any valid sender)"
    assert (rows["company"], rows["mobile_senders"], rows["stop_mention"]) == (
        "-",
        "False",
        "append",
    )


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("acme", "ACME"),  # alphanumeric ids in upper case
        ("Acme2026", "ACME2026"),
        ("ABCDEFGHIJK", "ABCDEFGHIJK"),  # 11: the most
        ("36180", "36180"),  # short codes as they are
        ("38000", "38000"),
        ("123", "123"),
        ("0937123456", "33937123456"),  # French numbers in E.164 (TON unknown)
        ("+33937123456", "33937123456"),
        ("0033937123456", "33937123456"),
        ("33937123456", "33937123456"),
        ("+447700900123", "447700900123"),
        ("123456789012345", "123456789012345"),  # 15 digits: the most
    ],
)
def test_senders_are_kept_normalised(ready, written, kept):
    assert ok(ready("account", "set", "acme", "--sender", written)) == "account acme changed\n"
    assert shown(ready)["senders"] == [kept]
    ok(ready("account", "set", "acme", "--remove-sender", written))  # written as given
    assert shown(ready)["senders"] == []


def test_senders_add_and_remove(ready):
    ok(ready("account", "set", "acme", "--sender", "ACME", "--sender", "36180"))
    ok(ready("account", "set", "acme", "--sender", "acme", "--sender", "0937123456"))  # ACME again
    assert shown(ready)["senders"] == ["33937123456", "36180", "ACME"]
    assert table(ok(ready("account", "show", "acme")))["senders"] == "33937123456 36180 ACME"
    ok(ready("account", "set", "acme", "--remove-sender", "+33937123456", "--sender", "NEWNAME"))
    assert shown(ready)["senders"] == ["36180", "ACME", "NEWNAME"]
    fails(ready("account", "set", "acme", "--remove-sender", "OTHER"), "acme has no sender OTHER")
    listed = json.loads(ok(ready("account", "list", "--json")))
    assert listed[0]["senders"] == ["36180", "ACME", "NEWNAME"]


def test_a_short_code_is_shared(ready):
    ok(ready("account", "add", "shop", "--password", "pw", "--sender", "36180"))
    ok(ready("account", "set", "acme", "--sender", "36180"))
    assert shown(ready)["senders"] == shown(ready, "shop")["senders"] == ["36180"]
    ok(ready("account", "set", "shop", "--remove-sender", "36180"))
    assert shown(ready)["senders"] == ["36180"]


@pytest.mark.parametrize(
    ("sender", "message"),
    [
        ("ACME SA", "an alphanumeric sender is 1 to 11 letters and digits"),
        ("ABCDEFGHIJKL", "an alphanumeric sender is 1 to 11"),
        ("ACMÉ", "an alphanumeric sender"),
        ("AC-ME", "an alphanumeric sender"),
        ("", "an alphanumeric sender"),
        ("12", "a number is a short code"),
        ("1234567890123456", "a number is a short code"),
        ("+36180", "a number is a short code"),  # + only before a full international number
        ("061234567", "a number is a short code"),  # a French number of the wrong length
        ("0123", "a number is a short code"),
        ("+330612345678", "a number is a short code"),
        ("3361234567", "a number is a short code"),
    ],
)
def test_bad_senders_are_one_line(ready, sender, message):
    fails(ready("account", "set", "acme", "--sender", sender), message)
    assert shown(ready)["senders"] == []


@pytest.mark.parametrize(
    ("mobile", "kept"),
    [("0612345678", "33612345678"), ("+33712345678", "33712345678"), ("33612345678", NUMBER)],
)
def test_mobile_senders_need_the_account_to_allow_them(ready, mobile, kept):
    fails(ready("account", "set", "acme", "--sender", mobile), "--mobile-senders")
    ok(ready("account", "set", "acme", "--mobile-senders", "--sender", mobile))
    account = shown(ready)
    assert account["mobile_senders"] is True
    assert account["senders"] == [kept]
    # Refusing them again means removing them first (or in the same command).
    fails(ready("account", "set", "acme", "--no-mobile-senders"), "--remove-sender")
    assert shown(ready)["mobile_senders"] is True
    ok(ready("account", "set", "acme", "--no-mobile-senders", "--remove-sender", mobile))
    assert (shown(ready)["mobile_senders"], shown(ready)["senders"]) == (False, [])


def test_a_landline_or_0937_number_is_no_mobile(ready):
    ok(ready("account", "set", "acme", "--sender", "0123456789", "--sender", "0937123456"))
    assert shown(ready)["senders"] == ["33123456789", "33937123456"]
    ok(ready("account", "set", "acme", "--no-mobile-senders"))


def test_identity_and_stop_mention(ready):
    identity = ["--company", "Acme SA", "--contact", "01 23 45 67 89", "--website", "acme.example"]
    ok(ready("account", "set", "acme", *identity, "--stop-mention", "refuse"))
    account = shown(ready)
    assert (account["company"], account["contact"], account["website"]) == (
        "Acme SA",
        "01 23 45 67 89",
        "acme.example",
    )
    assert account["stop_mention"] == "refuse"
    rows = table(ok(ready("account", "show", "acme")))
    assert (rows["company"], rows["website"], rows["stop_mention"]) == (
        "Acme SA",
        "acme.example",
        "refuse",
    )
    ok(ready("account", "set", "acme", "--stop-mention", "append", "--company", ""))
    assert (shown(ready)["stop_mention"], shown(ready)["company"]) == ("append", "")


def test_identity_errors(ready):
    fails(ready("account", "set", "acme", "--company", "x" * 161), "--company: at most 160")
    result = ready("account", "set", "acme", "--stop-mention", "never")
    assert result.exit_code == 2 and "'never' is not one of 'append', 'refuse'" in result.stderr


def test_a_failed_set_changes_nothing(ready):
    fails(
        ready(
            "account", "set", "acme", "--company", "Acme SA", "--sender", "OK", "--sender", "N O"
        ),
        "an alphanumeric sender",
    )
    account = shown(ready)
    assert (account["company"], account["senders"]) == ("", [])


def test_set_with_only_senders_is_a_change(ready):
    ok(ready("account", "set", "acme", "--sender", "ACME"))
    ok(ready("account", "set", "acme", "--remove-sender", "ACME"))
    result = ready("account", "set", "acme")
    assert result.exit_code == 2 and "nothing to change" in result.stderr


def test_account_add_with_senders_and_identity(ready):
    senders = ["--sender", "shop", "--sender", "36180"]
    identity = ["--company", "Shop", "--website", "shop.example"]
    out = ok(ready("account", "add", "shop", "--password", "pw", *senders, *identity))
    assert out == "account shop added\n"
    account = shown(ready, "shop")
    assert account["senders"] == ["36180", "SHOP"]
    assert (account["company"], account["website"]) == ("Shop", "shop.example")
    fails(ready("account", "add", "bad", "--password", "pw", "--sender", "0612345678"), "--mobile")
    assert [a["system_id"] for a in json.loads(ok(ready("account", "list", "--json")))] == [
        "acme",
        "shop",
    ]
    mobile = ["--mobile-senders", "--sender", "0712345678"]
    ok(ready("account", "add", "p2p", "--password", "pw", *mobile))
    assert shown(ready, "p2p")["senders"] == ["33712345678"]


# -- blacklist: add, check, remove ----------------------------------------------------------


def check(run, number: str) -> list[str]:
    return json.loads(ok(run("blacklist", "check", number, "--json")))["lists"]


def test_add_check_remove_global(ready):
    assert check(ready, NUMBER) == []
    assert ok(ready("blacklist", "add", "+33612345678")) == f"{NUMBER} added to the global list\n"
    for form in FORMS:
        assert check(ready, form) == ["global"]
    assert ok(ready("blacklist", "add", "0612345678")) == (
        f"{NUMBER} was on the global list: kept from now\n"
    )
    rows = table(ok(ready("blacklist", "check", "0612345678")))
    assert rows == {"number": NUMBER, "lists": "global"}
    assert ok(ready("blacklist", "remove", "0033612345678")) == (
        f"{NUMBER} removed from the global list\n"
    )
    assert check(ready, NUMBER) == []
    rows = table(ok(ready("blacklist", "check", "0612345678")))
    assert rows == {"number": NUMBER, "lists": "- (on no list)"}


def test_account_lists(ready):
    ok(ready("account", "add", "shop", "--password", "pw"))
    assert ok(ready("blacklist", "add", NUMBER, "--account", "acme")) == (
        f"{NUMBER} added to the list of acme\n"
    )
    ok(ready("blacklist", "add", NUMBER, "--account", "shop"))
    ok(ready("blacklist", "add", NUMBER))
    assert check(ready, NUMBER) == ["global", "acme", "shop"]
    assert ok(ready("blacklist", "remove", NUMBER, "--account", "acme")) == (
        f"{NUMBER} removed from the list of acme\n{NUMBER} is still on: global, shop\n"
    )
    fails(
        ready("blacklist", "remove", NUMBER, "--account", "acme"),
        f"{NUMBER} is not on the list of acme (it is on: global, shop)",
    )
    ok(ready("blacklist", "remove", NUMBER))
    ok(ready("blacklist", "remove", NUMBER, "--account", "shop"))
    fails(ready("blacklist", "remove", NUMBER), f"{NUMBER} is not on the global list")


@pytest.mark.parametrize(
    "args",
    [
        ("add", "12"),
        ("add", "06123456789"),
        ("add", "+330612345678"),
        ("remove", "hello"),
        ("check", ""),
        ("check", "0612345678x"),
    ],
)
def test_bad_numbers_are_one_line(ready, args):
    fails(ready("blacklist", *args), "is not a phone number")


@pytest.mark.parametrize("command", ["add", "remove", "import", "export"])
def test_unknown_account_is_one_line(ready, tmp_path, command):
    (tmp_path / "x.csv").write_text(f"{NUMBER}\n")
    args = {"import": [str(tmp_path / "x.csv")], "export": []}.get(command, [NUMBER])
    fails(ready("blacklist", command, *args, "--account", "ghost"), "no account ghost")


@pytest.mark.parametrize(
    "args", [("add", NUMBER), ("check", NUMBER), ("export",), ("stats",), ("remove", NUMBER)]
)
def test_schema_behind_is_one_line(smsc, args):
    fails(smsc("blacklist", *args), "run `smsc db upgrade`")


# -- the key --------------------------------------------------------------------------------


def test_the_generated_key_is_kept_in_the_store(ready, db_url):
    ok(ready("blacklist", "add", NUMBER))
    (value,) = [r.value for r in store_rows(db_url, select(schema.settings))]
    (entry,) = store_rows(db_url, select(schema.optouts))
    assert entry.number_hash == optouts.digest(bytes.fromhex(value), NUMBER)
    assert (entry.scope, entry.origin) == (optouts.GLOBAL, "admin")
    ok(ready("blacklist", "add", "0798765432"))
    assert len(store_rows(db_url, select(schema.settings))) == 1  # the same key again
    assert check(ready, NUMBER) == ["global"]


def test_the_configured_key_is_used(ready, config, db_url):
    config.write_text(f'[store]\nurl = "{db_url}"\n\n[optout]\nhash_key = "our secret"\n')
    ok(ready("blacklist", "add", NUMBER))
    (entry,) = store_rows(db_url, select(schema.optouts))
    assert entry.number_hash == optouts.digest(b"our secret", NUMBER)
    assert store_rows(db_url, select(schema.settings)) == []
    assert check(ready, NUMBER) == ["global"]
    # Under another key the entry is not found: the list means nothing without its key.
    config.write_text(f'[store]\nurl = "{db_url}"\n\n[optout]\nhash_key = "another"\n')
    assert check(ready, NUMBER) == []


def test_a_bad_optout_section_is_one_line(ready, config, db_url):
    config.write_text(f'[store]\nurl = "{db_url}"\n\n[optout]\nretention_days = 0\n')
    fails(ready("blacklist", "add", NUMBER), "optout.retention_days: must be at least 1")


# -- import ---------------------------------------------------------------------------------


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"06{i:08d}" for i in range(start, start + n)]


def test_import_a_few_thousand_lines(ready, tmp_path, db_url, monkeypatch):
    batches = []
    add = optouts.add

    def counted(conn, scope, hashes, origin, now):
        batches.append(len(hashes))
        return add(conn, scope, hashes, origin, now)

    monkeypatch.setattr(optouts, "add", counted)
    good = numbers(3500)
    lines = ["number,name"] + [f"{n},someone" for n in good]
    lines[100] = "not a number,x"  # line 101
    lines[2000] = "0612"  # line 2001
    lines.insert(5, "")  # a blank line (the lines after move down by one)
    lines.append("+33612345678;semicolon")  # a spreadsheet's ; separator
    lines.append('"06 00 00 00 01"')  # again, with spaces
    path = tmp_path / "stop.csv"
    path.write_text("\n".join(lines) + "\n")
    result = ready("blacklist", "import", str(path), "--account", "acme")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "imported 3500 numbers to the list of acme (3499 new), skipped 2 bad lines\n"
    )
    assert result.stderr == "not a phone number (skipped): lines 102, 2002\n"
    assert batches == [1000, 1000, 1000, 500]
    entries = store_rows(db_url, select(schema.optouts))
    assert len(entries) == 3499
    ((acme,),) = store_rows(db_url, select(schema.accounts.c.id))
    assert {(e.scope, e.origin) for e in entries} == {(acme, "import")}
    assert check(ready, good[-1]) == ["acme"]
    assert check(ready, "+33612345678") == ["acme"]
    # Again: harmless, nothing new, the time of each entry starts over.
    result = ready("blacklist", "import", str(path), "--account", "acme")
    assert result.stdout.startswith("imported 3500 numbers to the list of acme (0 new)")
    assert len(store_rows(db_url, select(schema.optouts))) == 3499


def test_import_to_the_global_list_with_a_bom_and_crlf(ready, tmp_path):
    path = tmp_path / "stop.csv"
    path.write_bytes("\ufeff0612345678\r\n0798765432\r\n".encode())
    assert ok(ready("blacklist", "import", str(path))) == (
        "imported 2 numbers to the global list (2 new)\n"
    )
    assert check(ready, NUMBER) == ["global"]


def test_import_reports_line_numbers_never_numbers(ready, tmp_path):
    bad = [f"061234567{i}9" for i in range(30)]  # 11 digits: not numbers
    path = tmp_path / "stop.csv"
    path.write_text("\n".join(["0612345678", *bad]) + "\n")
    result = ready("blacklist", "import", str(path))
    assert result.exit_code == 0
    lines = ", ".join(str(n) for n in range(2, 22))
    assert result.stderr == f"not a phone number (skipped): lines {lines} and 10 more\n"
    for number in bad:
        assert number not in result.output


def test_import_without_a_number_fails(ready, tmp_path):
    path = tmp_path / "stop.csv"
    path.write_text("number\nabc\n0612\n")
    result = ready("blacklist", "import", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "not a phone number (skipped): lines 2, 3",
        f"Error: no numbers imported from {path}: 2 bad lines",
    ]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert ok(ready("blacklist", "import", str(empty))) == (
        "imported 0 numbers to the global list (0 new)\n"
    )


def test_import_a_missing_file_is_one_line(ready, tmp_path):
    fails(ready("blacklist", "import", str(tmp_path / "nowhere.csv")), "No such file")


# -- export and stats -----------------------------------------------------------------------


def test_export_never_shows_numbers(ready, db_url):
    ok(ready("account", "add", "shop", "--password", "pw"))
    ok(ready("blacklist", "add", NUMBER))
    ok(ready("blacklist", "add", "0798765432", "--account", "shop"))
    exported = json.loads(ok(ready("blacklist", "export", "--json")))
    stored = {r.number_hash.hex(): r for r in store_rows(db_url, select(schema.optouts))}
    assert [(e["list"], e["origin"]) for e in exported] == [("global", "admin"), ("shop", "admin")]
    assert {e["hash"] for e in exported} == set(stored)
    assert all(e["created_at"].endswith("+00:00") for e in exported)
    text = ok(ready("blacklist", "export"))
    assert text.splitlines()[0].split() == ["hash", "list", "origin", "created_at"]
    for output in (json.dumps(exported), text):
        for digits in (NUMBER, "612345678", "0612345678", "798765432"):
            assert digits not in output
    only = json.loads(ok(ready("blacklist", "export", "--account", "shop", "--json")))
    assert [e["list"] for e in only] == ["shop"]
    assert json.loads(ok(ready("blacklist", "export", "--account", "acme", "--json"))) == []


def test_stats(ready):
    assert json.loads(ok(ready("blacklist", "stats", "--json"))) == []
    assert ok(ready("blacklist", "stats")).split() == ["list", "entries", "oldest", "newest"]
    ok(ready("blacklist", "add", NUMBER))
    ok(ready("blacklist", "add", NUMBER, "--account", "acme"))
    ok(ready("blacklist", "add", "0798765432", "--account", "acme"))
    stats = json.loads(ok(ready("blacklist", "stats", "--json")))
    assert [(s["list"], s["entries"]) for s in stats] == [("global", 1), ("acme", 2)]
    assert stats[1]["oldest"] <= stats[1]["newest"]
    rows = [line.split()[:2] for line in ok(ready("blacklist", "stats")).splitlines()]
    assert rows == [["list", "entries"], ["global", "1"], ["acme", "2"]]


def test_every_blacklist_command_exists():
    group = cli.main.commands["blacklist"]
    assert set(group.commands) >= {"add", "remove", "check", "import", "export", "stats"}
    result = CliRunner().invoke(cli.main, ["blacklist", "import", "--help"])
    assert "Example:" in result.stdout and "--account" in result.stdout
