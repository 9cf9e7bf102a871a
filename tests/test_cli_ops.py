"""The admin CLI as ops use it: `message show` (a message's whole life), `carrier list` with the
running server's live link state, progress bars, the --json and error conventions of every
group, and the installed `smsc` script run on a temp store with a temp config."""

import http.server
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import click
import pytest
from sqlalchemy import insert
from test_cli import fails, ok

from smsc import cli
from smsc.store import accounts, db, messages, schema
from smsc.store.messages import COLUMNS

NOW = 1_795_946_400.0  # 2026-11-29 10:00:00 UTC, 11:00 in Paris

CONFIG = """\
[store]
url = "{db_url}"

[[carriers]]
name = "orange"
binds = 2
window = 10
prefixes = ["3366"]

[[carriers]]
name = "sfr"
port = 2777
prefixes = ["3361"]
priority = 2

[[carriers]]
name = "bouygues"
port = 2778
priority = 3
"""


@pytest.fixture
def config(tmp_path, db_url):
    path = tmp_path / "smsc.toml"
    path.write_text(CONFIG.format(db_url=db_url))
    return path


# -- message show ---------------------------------------------------------------------------


def store_message(db_url, message_id=1, parts=(), receipts=(), **values) -> None:
    row = {
        "id": message_id,
        "service_type": "",
        "source_ton": 5,
        "source_npi": 0,
        "source": "ACME",
        "destination": "33612345678",
        "esm_class": 0,
        "protocol_id": 0,
        "priority": 0,
        "registered_delivery": 1,
        "data_coding": 0,
        "body": b"hello there",
        "tlvs": b"",
        "submitted_at": NOW,
        "due_at": NOW,
        "expires_at": NOW + 172_800,
        "state": "ACCEPTED",
        "updated_at": NOW,
        "origin": 0,
        "multi_id": None,
    } | values
    engine = db.make_engine(db_url)
    try:
        with db.writing(engine) as conn:
            row["account_id"] = accounts.get(conn, "acme").id
            messages.insert_rows(conn, [tuple(row.get(c) for c in COLUMNS)])
            for column in ("carrier", "attempts", "error"):
                if column in values:
                    conn.execute(
                        schema.messages.update()
                        .where(schema.messages.c.id == message_id)
                        .values({column: values[column]})
                    )
            for part in parts:
                conn.execute(insert(schema.message_parts).values(message_id=message_id, **part))
            for receipt in receipts:
                conn.execute(
                    insert(schema.outbox).values(
                        account_id=row["account_id"],
                        message_id=message_id,
                        source_ton=1,
                        source_npi=1,
                        source="33612345678",
                        destination="ACME",
                        esm_class=4,
                        data_coding=0,
                        body=b"id:1 stat:DELIVRD",
                        tlvs=b"",
                        due_at=receipt["created_at"],
                        expires_at=receipt["created_at"] + 3600,
                        **receipt,
                    )
                )
    finally:
        engine.dispose()


def delivered(db_url) -> None:
    """A scheduled two-part message, delivered by orange, its receipt forwarded."""
    store_message(
        db_url,
        due_at=NOW + 3600,
        state="DELIVERED",
        updated_at=NOW + 3700,
        carrier="orange",
        attempts=1,
        parts=[
            dict(
                seq=s,
                carrier="orange",
                carrier_id=f"a{s}",
                state="DELIVERED",
                sent_at=NOW + 3601,
                updated_at=NOW + 3650 + s * 10,
            )  # fmt: skip
            for s in (1, 2)
        ],
        receipts=[dict(created_at=NOW + 3700, state="DONE", attempts=1)],
    )


def key_values(output: str) -> dict[str, str]:
    lines = output.split("\n\n")[0].splitlines()
    return dict((line.split(None, 1) + [""])[:2] for line in lines)


def test_message_show_its_whole_life(ready, db_url):
    delivered(db_url)
    out = ok(ready("message", "show", "1"))
    shown = key_values(out)
    assert shown["accepted"] == "2026-11-29 10:00:00 UTC (11:00:00 Europe/Paris)"
    assert shown["scheduled_for"] == "2026-11-29 11:00:00 UTC (12:00:00 Europe/Paris)"
    assert shown["valid_until"] == "2026-12-01 10:00:00 UTC (11:00:00 Europe/Paris)"
    assert shown["state"] == "DELIVERED" and shown["carrier"] == "orange"
    assert shown["error"] == "-"
    assert shown["receipt"] == "DELIVERED at 2026-11-29 11:01:40 UTC (12:01:40 Europe/Paris)"
    assert shown["destination"] == "33612345678"  # numbers are shown: the admin's own store
    parts = out.split("parts at the carrier:\n")[1].split("\n\n")[0].splitlines()
    assert parts[0].split() == ["seq", "carrier", "carrier_id", "state", "sent_at", "updated_at"]
    assert parts[1].split()[:4] == ["1", "orange", "a1", "DELIVERED"]
    assert "2026-11-29 11:00:01 UTC (12:00:01 Europe/Paris)" in parts[2]
    forwarded = out.split("receipts forwarded to the client:\n")[1].splitlines()
    assert forwarded[0].split() == ["id", "created_at", "state", "attempts"]
    assert forwarded[1].split()[-2:] == ["DONE", "1"]
    assert "hello" not in out  # the text only with --text


def test_message_show_json(ready, db_url):
    delivered(db_url)
    shown = json.loads(ok(ready("message", "show", "1", "--json")))
    assert shown["submitted_at"] == {
        "epoch": NOW,
        "utc": "2026-11-29T10:00:00+00:00",
        "local": "2026-11-29T11:00:00+01:00",
    }
    assert shown["due_at"]["epoch"] == NOW + 3600
    assert shown["final_at"]["utc"] == "2026-11-29T11:01:40+00:00"
    assert shown["timezone"] == "Europe/Paris"
    assert [(p["seq"], p["carrier_id"], p["state"]) for p in shown["parts"]] == [
        (1, "a1", "DELIVERED"),
        (2, "a2", "DELIVERED"),
    ]
    assert shown["parts"][1]["updated_at"]["epoch"] == NOW + 3670
    (receipt,) = shown["client_receipts"]
    assert receipt["state"] == "DONE" and receipt["attempts"] == 1
    assert receipt["created_at"]["epoch"] == NOW + 3700
    assert "text" not in shown


def test_message_show_waiting_in_the_accounts_timezone(ready, db_url):
    ok(ready("account", "set", "acme", "--timezone", "America/New_York"))
    store_message(db_url, due_at=NOW - 1)  # not scheduled: due at once
    shown = key_values(ok(ready("message", "show", "1")))
    assert shown["accepted"] == "2026-11-29 10:00:00 UTC (05:00:00 America/New_York)"
    assert shown["scheduled_for"] == "- (at once)"
    assert shown["carrier"] == "- (not sent)"
    assert shown["receipt"].startswith("- (none yet; ACCEPTED since 2026-11-29 10:00:00 UTC")
    out = ok(ready("message", "show", "1"))
    assert "parts at the carrier:\n- (none: not sent)" in out
    assert "receipts forwarded to the client:\n- (none)" in out
    local = json.loads(ok(ready("message", "show", "1", "--json")))["expires_at"]["local"]
    assert local == "2026-12-01T05:00:00-05:00"


def test_message_show_a_local_date_that_differs(ready, db_url):
    store_message(db_url, submitted_at=NOW + 13.5 * 3600)  # 23:30 UTC, 00:30 in Paris
    shown = key_values(ok(ready("message", "show", "1")))
    assert shown["accepted"] == "2026-11-29 23:30:00 UTC (2026-11-30 00:30:00 Europe/Paris)"


def test_message_show_an_error(ready, db_url):
    store_message(db_url, state="UNDELIVERABLE", error=0x0B, carrier="sfr")
    shown = key_values(ok(ready("message", "show", "1")))
    assert shown["error"] == "0x0000000b" and shown["state"] == "UNDELIVERABLE"


@pytest.mark.parametrize(
    ("values", "text"),
    [
        ({}, "hello there"),
        ({"data_coding": 8, "body": "héllo €".encode("utf-16-be")}, "héllo €"),
        ({"esm_class": 0x40, "body": b"\x05\x00\x03\x2a\x02\x01part one"}, "part one"),
        ({"data_coding": 4, "body": b"\x01\x02"}, "0102"),  # binary: in hex
    ],
)
def test_message_show_text(ready, db_url, values, text):
    store_message(db_url, **values)
    assert key_values(ok(ready("message", "show", "1", "--text")))["text"] == text
    assert json.loads(ok(ready("message", "show", "1", "--json", "--text")))["text"] == text


@pytest.mark.parametrize(
    ("message_id", "error"), [("7", "no message 7"), ("x1", "'x1' is not a message id")]
)
def test_message_show_errors(ready, message_id, error):
    fails(ready("message", "show", message_id), error)


# -- carrier list: the live state -----------------------------------------------------------

STATUS = {
    "carriers": [
        {
            "name": "orange",
            "links": [
                {"state": "bound", "window_in_use": 3},
                {"state": "bound", "window_in_use": 4},
            ],
            "bound": 2,
            "binds": 2,
            "throttled": False,
        },
        {
            "name": "sfr",
            "links": [{"state": "reconnecting", "window_in_use": 0}],
            "bound": 0,
            "binds": 1,
            "throttled": False,
        },
    ],
    "binds": {},
}


@pytest.fixture
def status_server():
    """A fake switch /status on a free loopback port; set .body to change its answer."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(server.body).encode() if self.path == "/status" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.body = STATUS
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def with_metrics(config: Path, port: int) -> None:
    config.write_text(config.read_text() + f'\n[metrics]\nhost = "127.0.0.1"\nport = {port}\n')


def table(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()]


def test_carrier_list_live(smsc, config, status_server):
    with_metrics(config, status_server.server_address[1])
    assert table(ok(smsc("carrier", "list"))) == [
        ["name", "address", "binds", "bound", "state", "window_in_use", "tps", "priority",
         "prefixes"],
        ["orange", "127.0.0.1:2776", "2", "2", "bound", "2/2", "7/20", "100", "1", "3366"],
        ["sfr", "127.0.0.1:2777", "1", "0", "reconnecting", "0/10", "100", "2", "3361"],
        ["bouygues", "127.0.0.1:2778", "1", "-", "not", "running", "-/10", "100", "3", "-"],
    ]  # fmt: skip
    listed = json.loads(ok(smsc("carrier", "list", "--json")))
    assert [(c["name"], c["bound"], c["state"], c["window_in_use"]) for c in listed] == [
        ("orange", 2, "bound 2/2", 7),
        ("sfr", 0, "reconnecting", 0),
        ("bouygues", None, "not running", None),
    ]
    assert listed[0]["window"] == 10 and listed[0]["prefixes"] == ["3366"]


def test_carrier_list_throttled_and_down(smsc, config, status_server):
    with_metrics(config, status_server.server_address[1])
    status_server.body = {
        "carriers": [
            {"name": "orange", "links": [{"state": "bound", "window_in_use": 10}] * 2,
             "bound": 2, "binds": 2, "throttled": True},
            {"name": "sfr", "links": [{"state": "down", "window_in_use": 0}], "bound": 0,
             "binds": 1, "throttled": False},
            {"name": "bouygues", "links": [{"state": "connecting", "window_in_use": 0}],
             "bound": 0, "binds": 1, "throttled": False},
        ]
    }  # fmt: skip
    listed = json.loads(ok(smsc("carrier", "list", "--json")))
    assert [c["state"] for c in listed] == ["throttled", "down", "connecting"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_carrier_list_without_a_server(smsc, config):
    port = free_port()  # nothing listens there
    with_metrics(config, port)
    result = smsc("carrier", "list")
    assert result.exit_code == 0
    assert result.stderr.startswith(
        f"warning: live state unknown: server not reachable at 127.0.0.1:{port}"
    )
    assert len(result.stderr.splitlines()) == 1  # once, not per carrier
    rows = table(result.stdout)
    assert [r[0] for r in rows[1:]] == ["orange", "sfr", "bouygues"]
    assert all(r[3:5] == ["-", "unknown"] for r in rows[1:])


def test_carrier_list_without_metrics(smsc):
    result = smsc("carrier", "list", "--json")
    assert result.exit_code == 0
    assert "no [metrics] section" in result.stderr
    assert {c["state"] for c in json.loads(result.stdout)} == {"unknown"}


def test_carrier_list_a_server_answering_nonsense(smsc, config, status_server):
    with_metrics(config, status_server.server_address[1])
    status_server.body = ["not", "an", "object"]
    result = smsc("carrier", "list", "--json")
    assert result.exit_code == 0 and "not a JSON object" in result.stderr
    assert {c["state"] for c in json.loads(result.stdout)} == {"unknown"}


def test_carrier_list_a_slow_server_is_given_up(smsc, config, monkeypatch):
    with socket.socket() as s:  # listens, never answers
        s.bind(("127.0.0.1", 0))
        s.listen()
        with_metrics(config, s.getsockname()[1])
        monkeypatch.setattr(cli, "STATUS_TIMEOUT", 0.2)
        result = smsc("carrier", "list")
    assert result.exit_code == 0 and "server not reachable" in result.stderr


# -- conventions of every group -------------------------------------------------------------


def _commands(group: click.Group, path=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_list_command_takes_json():
    listing = {"list", "stats", "export", "show", "check"}
    for path, command in _commands(cli.main):
        if path[-1] in listing:
            (option,) = [p for p in command.params if p.name == "as_json"]
            assert option.help, path


def test_every_admin_group_exists():
    groups = {name for name, c in cli.main.commands.items() if isinstance(c, click.Group)}
    assert groups >= {"account", "carrier", "route", "mnp", "blacklist", "message", "queue", "db"}


def test_progress_bars_only_on_a_terminal(monkeypatch):
    assert isinstance(cli._progress(10, "x"), cli._NoProgress)
    monkeypatch.setattr(cli, "_terminal", lambda: True)
    assert not isinstance(cli._progress(10, "x"), cli._NoProgress)


def test_imports_show_a_progress_bar_on_a_terminal(ready, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_terminal", lambda: True)
    ported = tmp_path / "ported.csv"
    ported.write_text("0612345678,orange\n")
    result = ready("mnp", "import", str(ported))
    assert result.exit_code == 0 and "importing" in result.stderr
    stops = tmp_path / "stop.csv"
    stops.write_text("0612345678\n")
    result = ready("blacklist", "import", str(stops))
    assert result.exit_code == 0 and "importing" in result.stderr


# -- the installed script -------------------------------------------------------------------

SCRIPT = Path(sys.executable).parent / "smsc"


@pytest.fixture
def script(config, tmp_path):
    """Run the installed `smsc` with the temp config (through $SMSC_CONFIG)."""
    if not SCRIPT.exists():
        pytest.skip(f"no installed smsc script at {SCRIPT}")

    def run(*args, code=0):
        env = {"SMSC_CONFIG": str(config), "PATH": str(SCRIPT.parent), "TZ": "UTC"}
        done = subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    return run


def test_the_installed_script_runs_every_group(script, db_url, tmp_path):
    assert script("db", "upgrade").stdout.startswith("schema at ")
    script("account", "add", "acme", "--password", "s3cret")
    (listed,) = json.loads(script("account", "list", "--json").stdout)
    assert listed["system_id"] == "acme"
    assert table(script("route", "list").stdout)[1] == ["3361", "sfr", "2", "config"]
    shown = json.loads(script("mnp", "show", "+33661234567", "--json").stdout)
    assert shown["route"][0] == "orange"
    script("blacklist", "add", "0612345678")
    stats = json.loads(script("blacklist", "stats", "--json").stdout)
    assert [(s["list"], s["entries"]) for s in stats] == [("global", 1)]
    delivered(db_url)
    out = script("message", "show", "1").stdout
    assert "2026-11-29 10:00:00 UTC (11:00:00 Europe/Paris)" in out
    queue = {r[0]: r[1] for r in table(script("queue", "stats").stdout)[1:]}
    assert queue["DELIVERED"] == "1"
    done = script("carrier", "list")
    assert [r[0] for r in table(done.stdout)[1:]] == ["orange", "sfr", "bouygues"]
    assert done.stderr.count("live state unknown") == 1


ERRORS = [
    (("account", "show", "nobody"), "no account nobody"),
    (("route", "add", "3375", "nope"), "no carrier nope"),
    (("mnp", "show", "hello"), "not a phone number"),
    (("blacklist", "check", "hello"), "not a phone number"),
    (("message", "show", "9"), "no message 9"),
    (("queue", "cancel", "--account", "nobody"), "no account nobody"),
]


def test_the_installed_script_errors_are_one_line(script):
    script("db", "upgrade")
    for args, error in ERRORS:
        done = script(*args, code=1)
        assert done.stdout == "", args
        assert done.stderr.startswith("Error: ") and error in done.stderr, (args, done.stderr)
        assert len(done.stderr.splitlines()) == 1, (args, done.stderr)
    done = script("carrier", "list", "--nope", code=2)  # usage: click's usage lines, no trace
    assert "No such option" in done.stderr


def test_the_installed_script_on_a_store_behind(script):
    done = script("queue", "stats", code=1)
    assert done.stderr.startswith("Error: ") and len(done.stderr.splitlines()) == 1
