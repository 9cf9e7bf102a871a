"""`smsc route`, `smsc mnp` and `smsc carrier`, in process with click's CliRunner, on a temp
store named by a temp config that declares three carriers."""

import json

import pytest
from click.testing import CliRunner

from smsc import cli
from smsc.store import db, routing

CONFIG = """\
[store]
url = "{db_url}"

[[carriers]]
name = "orange"
port = 2776
prefixes = ["3366", "3367"]
priority = 1

[[carriers]]
name = "sfr"
host = "10.0.0.2"
port = 2777
binds = 2
window = 20
tps = 50
prefixes = ["3361"]
priority = 2
simulate = true

[[carriers]]
name = "bouygues"
host = "::1"
port = 2778
priority = 3

[routing]
default = ["bouygues", "orange"]
"""


@pytest.fixture
def config(tmp_path, db_url):
    path = tmp_path / "smsc.toml"
    path.write_text(CONFIG.format(db_url=db_url))
    return path


@pytest.fixture
def ready(smsc):
    """A store at head."""
    assert smsc("db", "upgrade").exit_code == 0
    return smsc


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


def _routes(db_url):
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            return routing.all_routes(conn)
    finally:
        engine.dispose()


def _ported(db_url, *numbers):
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            return routing.ported(conn, list(numbers)), routing.mnp_count(conn)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "args",
    [
        ("route", "list"),
        ("route", "add", "33", "sfr"),
        ("route", "remove", "33", "sfr"),
        ("mnp", "show", "0612345678"),
    ],
)
def test_schema_behind_is_one_line(smsc, args):
    fails(smsc(*args), "run `smsc db upgrade`")


def test_mnp_import_on_a_store_behind(smsc, tmp_path):
    csv = tmp_path / "ported.csv"
    csv.write_text("0612345678,sfr\n")
    fails(smsc("mnp", "import", str(csv)), "run `smsc db upgrade`")


# -- route -----------------------------------------------------------------------------------


def test_route_add_list_remove(ready, db_url):
    assert ok(ready("route", "add", "3375", "sfr", "--priority", "0")) == (
        "route 3375 sfr added (priority 0)\n"
    )
    # Without --priority: the carrier's own.
    assert (
        ok(ready("route", "add", "+3366", "bouygues")) == "route 3366 bouygues added (priority 3)\n"
    )
    assert ok(ready("route", "add", "3366", "bouygues", "--priority", "0")) == (
        "route 3366 bouygues changed: priority 0 (was 3)\n"
    )
    assert _routes(db_url) == [("3366", "bouygues", 0), ("3375", "sfr", 0)]

    listed = json.loads(ok(ready("route", "list", "--json")))
    assert [(r["prefix"], r["carrier"], r["priority"], r["source"]) for r in listed] == [
        ("3361", "sfr", 2, "config"),
        ("3366", "bouygues", 0, "admin"),
        ("3366", "orange", 1, "config"),
        ("3367", "orange", 1, "config"),
        ("3375", "sfr", 0, "admin"),
        ("*", "bouygues", 1, "default"),
        ("*", "orange", 2, "default"),
    ]
    table = [line.split() for line in ok(ready("route", "list")).splitlines()]
    assert table[0] == ["prefix", "carrier", "priority", "source"]
    assert ["3366", "bouygues", "0", "admin"] in table and ["*", "orange", "2", "default"] in table

    assert ok(ready("route", "remove", "3375", "sfr")) == "route 3375 sfr removed\n"
    assert _routes(db_url) == [("3366", "bouygues", 0)]


def test_route_errors(ready):
    fails(ready("route", "add", "33", "free"), "no carrier free in the config")
    fails(ready("route", "add", "33a", "sfr"), "prefix '33a' is not 1 to 15 E.164 digits")
    fails(ready("route", "add", "33", "sfr", "--priority", "-1"), "priority must be 0 or more")
    fails(ready("route", "remove", "3366", "orange"), "comes from the config")
    fails(ready("route", "remove", "3366", "sfr"), "no route 3366 sfr")
    fails(ready("route", "remove", "x", "sfr"), "is not 1 to 15 E.164 digits")


def test_route_to_a_carrier_gone_from_the_config(ready, db_url):
    engine = db.make_engine(db_url)
    with db.writing(engine) as conn:
        routing.add_route(conn, "44", "free", 1)
    engine.dispose()
    result = ready("route", "list", "--json")
    assert result.exit_code == 0
    assert ("44", "free", "admin") in {
        (r["prefix"], r["carrier"], r["source"]) for r in json.loads(result.stdout)
    }
    assert result.stderr == "warning: route 44 free: no carrier free in the config, ignored\n"
    assert ok(ready("route", "remove", "44", "free")) == "route 44 free removed\n"


# -- carrier ---------------------------------------------------------------------------------


def live_unknown(result) -> str:
    """stdout of a `carrier list` without a server to ask: said once on stderr, exit 0."""
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: live state unknown: "), result.stderr
    assert len(result.stderr.splitlines()) == 1
    return result.stdout


def test_carrier_list(smsc):  # the config only: no store needed
    listed = json.loads(live_unknown(smsc("carrier", "list", "--json")))
    unknown = {"bound": None, "state": "unknown", "window_in_use": None}
    assert listed == [
        {
            "name": "orange",
            **unknown,
            "address": "127.0.0.1:2776",
            "binds": 1,
            "window": 10,
            "tps": 100,
            "priority": 1,
            "prefixes": ["3366", "3367"],
            "simulate": False,
        },
        {
            "name": "sfr",
            **unknown,
            "address": "10.0.0.2:2777",
            "binds": 2,
            "window": 20,
            "tps": 50,
            "priority": 2,
            "prefixes": ["3361"],
            "simulate": True,
        },
        {
            "name": "bouygues",
            **unknown,
            "address": "[::1]:2778",
            "binds": 1,
            "window": 10,
            "tps": 100,
            "priority": 3,
            "prefixes": [],
            "simulate": False,
        },
    ]
    table = [line.split() for line in live_unknown(smsc("carrier", "list")).splitlines()]
    assert table == [
        ["name", "address", "binds", "bound", "state", "window_in_use", "tps", "priority",
         "prefixes"],
        ["orange", "127.0.0.1:2776", "1", "-", "unknown", "-/10", "100", "1", "3366", "3367"],
        ["sfr", "10.0.0.2:2777", "2", "-", "unknown", "-/40", "50", "2", "3361"],
        ["bouygues", "[::1]:2778", "1", "-", "unknown", "-/10", "100", "3", "-"],
    ]  # fmt: skip


def test_carrier_list_none(tmp_path):
    config = tmp_path / "empty.toml"
    config.write_text("")
    result = CliRunner().invoke(cli.main, ["--config", str(config), "carrier", "list", "--json"])
    assert json.loads(live_unknown(result)) == []


def test_carrier_help_says_where_link_state_is():
    result = CliRunner().invoke(cli.main, ["carrier", "list", "--help"])
    assert "metrics" in ok(result)


# -- mnp -------------------------------------------------------------------------------------


def test_mnp_import_and_show(ready, tmp_path, db_url):
    csv = tmp_path / "ported.csv"
    csv.write_text(
        "\ufeffnumber,carrier\n"  # Excel's BOM, and a header
        "+33612345678,sfr\n"
        "0612345679 , orange\r\n"
        "\n"
        "0033612345680,bouygues\n"
    )
    assert ok(ready("mnp", "import", str(csv))) == "imported 3 numbers; the table holds 3\n"
    assert _ported(db_url, "33612345678", "33612345679", "33612345680") == (
        {"33612345678": "sfr", "33612345679": "orange", "33612345680": "bouygues"},
        3,
    )
    # 3366: orange (config), then the default; ported to sfr: sfr first.
    shown = json.loads(ok(ready("mnp", "show", "+33661234567", "--json")))
    assert shown == {
        "number": "33661234567",
        "ported_to": None,
        "route": ["orange", "bouygues"],
    }
    shown = json.loads(ok(ready("mnp", "show", "0612345678", "--json")))
    assert shown == {
        "number": "33612345678",
        "ported_to": "sfr",
        "route": ["sfr", "bouygues", "orange"],
    }
    table = dict(
        line.split(None, 1) for line in ok(ready("mnp", "show", "0612345678")).splitlines()
    )
    assert table == {"number": "33612345678", "ported_to": "sfr", "route": "sfr bouygues orange"}
    table = dict(
        line.split(None, 1) for line in ok(ready("mnp", "show", "0699999999")).splitlines()
    )
    assert table["ported_to"] == "- (not ported)"


def test_mnp_import_again_replaces(ready, tmp_path, db_url):
    csv = tmp_path / "ported.csv"
    csv.write_text("33612345678,sfr\n33612345679,sfr\n")
    ok(ready("mnp", "import", str(csv)))
    csv.write_text("33612345678,orange\n")
    assert ok(ready("mnp", "import", str(csv))) == "imported 1 numbers; the table holds 2\n"
    assert _ported(db_url, "33612345678")[0] == {"33612345678": "orange"}


def test_mnp_import_reports_bad_lines(ready, tmp_path, db_url):
    csv = tmp_path / "ported.csv"
    csv.write_text(
        "33612345678,sfr\n"
        "12345,sfr\n"  # line 2: too short
        "33612345679,free\n"  # line 3: not a configured carrier
        "33612345680\n"  # line 4: one field
        "33612345681,sfr,extra\n"  # line 5: three
        "number,carrier\n"  # line 6: a header, but not on line 1
        "\xe9\n"  # line 7
        "33612345682,orange\n"
    )
    result = ready("mnp", "import", str(csv))
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported 2 numbers, skipped 6 lines; the table holds 2\n"
    assert result.stderr.splitlines() == [
        "line 2: '12345' is not a phone number (skipped)",
        "line 3: no carrier 'free' in the config (skipped)",
        "line 4: expected number,carrier (skipped)",
        "line 5: expected number,carrier (skipped)",
        "line 6: 'number' is not a phone number (skipped)",
        "line 7: expected number,carrier (skipped)",
    ]
    assert _ported(db_url, "33612345678", "33612345682")[1] == 2


def test_mnp_import_reports_the_first_bad_lines_only(ready, tmp_path):
    csv = tmp_path / "ported.csv"
    csv.write_text("".join(f"bad{i},sfr\n" for i in range(1, 101)) + "0612345678,sfr\n")
    result = ready("mnp", "import", str(csv))
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == cli.MNP_REPORTED + 1
    assert lines[0] == "line 1: 'bad1' is not a phone number (skipped)"
    assert lines[-1] == f"and {100 - cli.MNP_REPORTED} more lines skipped"
    assert result.stdout == "imported 1 numbers, skipped 100 lines; the table holds 1\n"


def test_mnp_import_with_nothing_good_fails(ready, tmp_path):
    csv = tmp_path / "ported.csv"
    csv.write_text("0612345678;sfr\n")
    result = ready("mnp", "import", str(csv))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 1: expected number,carrier (skipped)",
        f"Error: no numbers imported from {csv}: 1 lines skipped",
    ]


def test_mnp_import_of_an_empty_file(ready, tmp_path):
    csv = tmp_path / "ported.csv"
    csv.write_text("")
    assert ok(ready("mnp", "import", str(csv))) == "imported 0 numbers; the table holds 0\n"


def test_mnp_import_of_a_missing_file(ready, tmp_path):
    fails(ready("mnp", "import", str(tmp_path / "nope.csv")), "nope.csv: No such file or directory")


def test_mnp_import_100k_lines(ready, tmp_path, db_url):
    csv = tmp_path / "ported.csv"
    carriers = ("orange", "sfr", "bouygues")
    with csv.open("w") as f:
        f.write("number,carrier\n")
        for i in range(100_000):
            f.write(f"+3361{i:07d},{carriers[i % 3]}\n")
        f.write("0612,sfr\n")  # the last line, 100,002, is bad
    result = ready("mnp", "import", str(csv))
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported 100000 numbers, skipped 1 lines; the table holds 100000\n"
    assert result.stderr == "line 100002: '0612' is not a phone number (skipped)\n"
    found, count = _ported(db_url, "33610000000", "33610099999", "33610100000")
    assert found == {"33610000000": "orange", "33610099999": "orange"} and count == 100_000


def test_mnp_import_commits_in_chunks(ready, tmp_path, db_url, monkeypatch):
    monkeypatch.setattr(cli, "MNP_COMMIT_ROWS", 10)
    commits = []
    real = routing.import_mnp
    monkeypatch.setattr(
        routing, "import_mnp", lambda conn, rows: commits.append(len(rows)) or real(conn, rows)
    )
    csv = tmp_path / "ported.csv"
    csv.write_text("".join(f"3361{i:07d},sfr\n" for i in range(25)))
    assert ok(ready("mnp", "import", str(csv))) == "imported 25 numbers; the table holds 25\n"
    assert commits == [10, 10, 5]


def test_mnp_show_errors(ready):
    fails(ready("mnp", "show", "hello"), "'hello' is not a phone number")


def test_mnp_show_unroutable(ready, tmp_path, db_url):
    config = tmp_path / "noroute.toml"
    config.write_text(
        f'[store]\nurl = "{db_url}"\n[[carriers]]\nname = "orange"\nprefixes = ["3366"]\n'
    )
    run = CliRunner().invoke
    args = ["--config", str(config), "mnp", "show", "447911123456"]
    table = dict(line.split(None, 1) for line in ok(run(cli.main, args)).splitlines())
    assert table["route"] == "- (no route)"


def test_every_routing_command_exists():
    groups = {name: set(cli.main.commands[name].commands) for name in ("route", "mnp", "carrier")}
    assert groups["route"] >= {"add", "list", "remove"}
    assert groups["mnp"] >= {"import", "show"}
    assert groups["carrier"] >= {"list"}
