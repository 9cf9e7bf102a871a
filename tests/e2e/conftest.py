"""End-to-end fixtures: a real `smsc serve` subprocess on a free loopback port, and clients.

`smsc_factory` (module scope) starts servers: each gets a directory of its own with a config
TOML (`[smpp] port = 0`: the port is read from the `SMPP listening on HOST:PORT` log line),
a store made with `smsc db upgrade`, and its accounts. The store is a SQLite file in that
directory or, with SMSC_TEST_PG_URL set (tox env `pg`), a schema of its own in that PostgreSQL
database, dropped once the module's servers are stopped. Later issues pass more config
(carriers, metrics, …) through `config=`, and accounts that need the CLI through `accounts=`:

    @pytest.fixture(scope="module")
    def server(smsc_factory, smsc_account):
        return smsc_factory(
            smpp={"window": 10},
            config={"carriers": [{"name": "orange", "simulate": True, ...}]},
            accounts=[smsc_account("capped", "pw", tps=5)],
        )

`server.address`, `server.cli(...)`, `server.message(id)`, `server.query(sql, params)` (the
store, read-only; `?` placeholders on either database), `server.tables()`, `server.kill()`,
`server.start()`, `server.restart()`.

The servers are stopped (SIGTERM, SIGKILL after a timeout) when the module is done; a server
that died on its own, or logged a traceback, fails the test that ends its module. The output
of every live server is attached to the report of each failing test.

Carriers: `carrier_sim(name, port, control_port, *options)` runs `smsc carrier-sim` processes
(killable, restartable on their port, each life recording what it received to a file of its
own), `sim_control(control_port)` reads a simulator started inside the switch, and
`free_ports(n)` picks ports for them.

Helpers reach the tests through fixtures (`smsc_account`, `smpplib_client`, `raw_client`), so
that no test imports this file by name.
"""

import functools
import itertools
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import smpplib.client
from sqlalchemy import create_engine, make_url, text
from stores import PG_URL

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0
_LISTENING = re.compile(r"SMPP listening on ([0-9.]+):(\d+)")
_LIVE: list["Smsc"] = []
_SIMS: list["CarrierSim"] = []  # the carrier-sim processes of the running module
_schemas = itertools.count()


def _smsc_command() -> list[str]:
    """The console script of the environment running the tests."""
    script = Path(sys.executable).with_name("smsc")
    if script.exists():
        return [str(script)]
    found = shutil.which("smsc")
    return [found] if found else [sys.executable, "-m", "smsc"]


# -- config ------------------------------------------------------------------------------------


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table: `simulator = {dlr_delay = 0.1}`
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_dumps(config: dict) -> str:
    """Enough TOML for smsc configs: top-level tables, arrays of tables, scalars and lists."""
    lines: list[str] = []

    def table(header: str, values: dict) -> None:
        lines.append(header)
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        lines.append("")

    for key, value in config.items():
        if isinstance(value, dict):
            table(f"[{key}]", value)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                table(f"[[{key}]]", item)
        else:
            lines.insert(0, f"{key} = {_toml_value(value)}")
    return "\n".join(lines)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Account:
    """An account made with `smsc account add` (and `account set --disable` if disabled).
    Accounts that need nothing but a password can go in `config={"accounts": [...]}`."""

    system_id: str
    password: str
    tps: int | None = None
    max_binds: int | None = None
    disabled: bool = False


# -- the server --------------------------------------------------------------------------------


class Smsc:
    """One `smsc serve` process and its directory; restartable on the same store."""

    def __init__(self, workdir: Path, config: dict):
        self.workdir = workdir
        self.db_path = workdir / "smsc.db"
        self.config_path = workdir / "smsc.toml"
        self.log_path = workdir / "serve.log"
        # On PostgreSQL, a schema of its own, unless `config` names a store (test_cluster's
        # nodes share one).
        self.schema = _create_schema() if PG_URL and "url" not in config.get("store", {}) else None
        url = _schema_url(self.schema) if self.schema else f"sqlite:///{self.db_path}"
        self.config = _merge(
            {"smpp": {"host": "127.0.0.1", "port": 0}, "store": {"url": url}}, config
        )
        self.store_url = self.config["store"]["url"]
        self._reader = None  # on PostgreSQL: the engine `query` reads through
        self.config_path.write_text(toml_dumps(self.config))
        self.host = self.config["smpp"]["host"]
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.stop_forced = False  # SIGTERM was not enough

    # CLI

    def cli(self, *args: str, check: bool = True, timeout: float = CLI_TIMEOUT):
        """Run `smsc --config … ARGS`; returns the CompletedProcess (stdout and stderr text)."""
        result = subprocess.run(
            [*_smsc_command(), "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            env=_env(),
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"smsc {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def cli_parallel(self, *commands: list[str]) -> None:
        """Run several admin commands at once (each one costs a Python start-up)."""
        procs = [
            (
                cmd,
                subprocess.Popen(
                    [*_smsc_command(), "--config", str(self.config_path), *cmd],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    cwd=self.workdir,
                    env=_env(),
                ),
            )
            for cmd in commands
        ]
        failures = []
        for cmd, proc in procs:
            out, _ = proc.communicate(timeout=CLI_TIMEOUT)
            if proc.returncode != 0:
                failures.append(f"smsc {' '.join(cmd)} exited {proc.returncode}:\n{out}")
        if failures:
            raise AssertionError("\n".join(failures))

    def add_accounts(self, accounts: list[Account]) -> None:
        adds = []
        for a in accounts:
            cmd = ["account", "add", a.system_id, "--password", a.password]
            if a.tps is not None:
                cmd += ["--tps", str(a.tps)]
            if a.max_binds is not None:
                cmd += ["--max-binds", str(a.max_binds)]
            adds.append(cmd)
        if adds:
            self.cli_parallel(*adds)
        disables = [["account", "set", a.system_id, "--disable"] for a in accounts if a.disabled]
        if disables:
            self.cli_parallel(*disables)

    def message(self, message_id: str) -> dict:
        """`smsc message show ID --json`."""
        import json

        return json.loads(self.cli("message", "show", str(message_id), "--json").stdout)

    def query(self, sql: str, params=()) -> list[tuple]:
        """Read the store directly, read-only (another reading than the server's)."""
        if self.store_url.startswith("sqlite"):
            conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
            try:
                return conn.execute(sql, params).fetchall()
            finally:
                conn.close()
        if self._reader is None:
            self._reader = create_engine(self.store_url).execution_options(postgresql_readonly=True)
        # sqlite3's `?` placeholders as SQLAlchemy's named ones.
        names = (f":p{i}" for i in itertools.count())
        with self._reader.connect() as conn:
            rows = conn.execute(
                text(re.sub(r"\?", lambda _: next(names), sql)),
                {f"p{i}": value for i, value in enumerate(params)},
            )
            return [tuple(row) for row in rows]

    def tables(self) -> list[str]:
        """The names of the store's tables."""
        if self.store_url.startswith("sqlite"):
            sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
        else:
            sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        return [name for (name,) in self.query(sql)]

    def drop_store(self) -> None:
        """Close the reads, and drop the server's schema (on PostgreSQL), once it stopped."""
        if self._reader is not None:
            self._reader.dispose()
        if self.schema:
            _drop_schema(self.schema)

    # process

    @property
    def address(self) -> tuple[str, int]:
        assert self.port is not None, "server not started"
        return self.host, self.port

    def start(self, timeout: float = START_TIMEOUT) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("a") as log:
            log.write(f"---- start #{self.starts}: smsc serve ----\n")
            offset = log.tell()
            self.proc = subprocess.Popen(
                [*_smsc_command(), "--config", str(self.config_path), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=_env(),
                start_new_session=True,
            )
        if self not in _LIVE:
            _LIVE.append(self)
        deadline = time.monotonic() + timeout
        while True:
            with self.log_path.open() as log:
                log.seek(offset)
                match = _LISTENING.search(log.read())
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"smsc serve exited with {self.proc.returncode} before listening:\n"
                    + self.log()
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"smsc serve not listening after {timeout} s:\n" + self.log())
            time.sleep(0.05)

    def listening(self, what: str) -> tuple[str, int]:
        """Where the last start's `what` listener ("HTTP", "SMTP") listens, from its log line
        (logged before the SMPP one that `start` waits for)."""
        last_start = self.log().split("---- start #")[-1]
        found = re.findall(rf"{what} listening on ([0-9.]+):(\d+)", last_start)
        assert found, f"no {what} listener in the log"
        return found[-1][0], int(found[-1][1])

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.stop_forced = True
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 200) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


@functools.cache
def _admin():
    """An engine on the database of SMSC_TEST_PG_URL, to create and drop schemas in."""
    return create_engine(PG_URL)


def _create_schema() -> str:
    # Also the application_name of the server's connections (`_schema_url`): the ones left
    # open (a killed server's, a store's reads) can be ended before the schema is dropped.
    schema = f"e{os.getpid()}_{next(_schemas)}"
    with _admin().begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    return schema


def _schema_url(schema: str) -> str:
    options = {"options": f"-csearch_path={schema}", "application_name": schema}
    return make_url(PG_URL).update_query_dict(options).render_as_string(hide_password=False)


def _drop_schema(schema: str) -> None:
    with _admin().begin() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :s"
            ),
            {"s": schema},
        )
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def _env() -> dict:
    env = dict(os.environ)
    env.pop("SMSC_CONFIG", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def smsc_factory(tmp_path_factory):
    """Start servers: `smsc_factory(smpp=…, config=…, accounts=[Account…], start=True,
    tracebacks_ok=False)`. Stopped at the end of the module; a server that died by itself
    or logged a traceback is an error there."""
    started: list[tuple[Smsc, bool]] = []

    def make(
        smpp: dict | None = None,
        config: dict | None = None,
        accounts: list[Account] = (),
        start: bool = True,
        upgrade: bool = True,
        tracebacks_ok: bool = False,
    ) -> Smsc:
        workdir = tmp_path_factory.mktemp("smsc")
        server = Smsc(workdir, _merge(config or {}, {"smpp": smpp or {}}))
        started.append((server, tracebacks_ok))
        if upgrade:
            server.cli("db", "upgrade")
            server.add_accounts(list(accounts))
        if start:
            server.start()
        return server

    yield make

    problems = []
    for server, tracebacks_ok in started:
        mine = []
        if server.proc is not None and server.proc.poll() is not None:
            code = server.proc.returncode
            if code not in (0, -signal.SIGKILL):  # -9: killed on purpose by a test
                mine.append(f"smsc serve exited {code} during the tests")
        elif server.proc is not None:
            code = server.stop()
            if server.stop_forced:
                mine.append(f"smsc serve ignored SIGTERM for {STOP_TIMEOUT} s")
            elif code != 0:
                mine.append(f"smsc serve exited {code} on SIGTERM")
        if server in _LIVE:
            _LIVE.remove(server)
        server.drop_store()
        log = server.log()
        if not tracebacks_ok and ("Traceback" in log or "Unhandled Error" in log):
            mine.append("the server logged a traceback")
        if mine:
            problems.append(
                f"{server.workdir}: " + "; ".join(mine) + f"\noutput:\n{server.log_tail()}"
            )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def smsc_account():
    """The `Account` type (to pass to `smsc_factory(accounts=…)`)."""
    return Account


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in _LIVE:
            report.sections.append((f"smsc serve output ({server.workdir})", server.log_tail()))
        for sim in _SIMS:
            tail = "\n".join(sim.log().splitlines()[-50:])
            report.sections.append((f"carrier-sim {sim.name} output", tail))


# -- clients -----------------------------------------------------------------------------------


@pytest.fixture
def smpplib_client():
    """`connect(server) -> smpplib.client.Client` (connected, not bound); all closed after the
    test."""
    clients: list[smpplib.client.Client] = []

    def connect(server: Smsc, timeout: float = 5.0) -> smpplib.client.Client:
        client = smpplib.client.Client(
            *server.address, timeout=timeout, allow_unknown_opt_params=True
        )
        client.connect()
        clients.append(client)
        return client

    yield connect
    close_clients(clients)


def close_clients(clients: list[smpplib.client.Client]) -> None:
    for client in clients:
        if client._socket is not None:
            client._socket.close()
            client._socket = None
        client.state = "CLOSED"


class Frame:
    """A PDU read off the wire, header decoded by hand (not by smsc's codec)."""

    __slots__ = ("command_id", "status", "sequence", "body")

    def __init__(self, command_id: int, status: int, sequence: int, body: bytes):
        self.command_id = command_id
        self.status = status
        self.sequence = sequence
        self.body = body

    def __repr__(self) -> str:
        return (
            f"Frame(0x{self.command_id:08x}, status=0x{self.status:x}, seq={self.sequence}, "
            f"body={self.body!r})"
        )


def _c(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"


def frame(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    """A PDU built by hand."""
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


class RawClient:
    """A bare socket speaking SMPP by hand: to send what a well-behaved client never would."""

    BIND = {"transmitter": 0x02, "receiver": 0x01, "transceiver": 0x09}
    frame = staticmethod(frame)

    def __init__(self, address: tuple[str, int], timeout: float = 5.0):
        self.sock = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self._pos = 0
        self._seq = 0
        self.lock = threading.Lock()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, command_id: int, body: bytes = b"") -> int:
        seq = self.next_seq()
        self.send(frame(command_id, seq, body))
        return seq

    def read(self, timeout: float | None = 5.0) -> Frame | None:
        """The next PDU, or None if the server closed the connection."""
        self.sock.settimeout(timeout)
        while True:
            buf, pos = self._buf, self._pos
            if len(buf) - pos >= 16:
                length, command_id, status, sequence = struct.unpack_from(">IIII", buf, pos)
                assert 16 <= length <= 1 << 20, f"server sent command_length {length}"
                if len(buf) - pos >= length:
                    self._pos = pos + length
                    return Frame(command_id, status, sequence, bytes(buf[pos + 16 : pos + length]))
            data = self.sock.recv(65536)
            if not data:
                assert pos == len(buf), f"connection closed inside a PDU: {buf[pos:]!r}"
                return None
            self._buf = buf[pos:] + data
            self._pos = 0

    def call(self, command_id: int, body: bytes = b"", timeout: float = 5.0) -> Frame:
        """Send a request and read its answer (answering enquire_links on the way)."""
        seq = self.request(command_id, body)
        while True:
            answer = self.read(timeout)
            assert answer is not None, "connection closed before the answer"
            if answer.command_id == 0x15:  # the server's enquire_link
                self.send(frame(0x80000015, answer.sequence))
                continue
            assert answer.sequence == seq, f"answer to {seq} expected, got {answer}"
            return answer

    def bind(self, mode: str, system_id: str, password: str) -> Frame:
        body = _c(system_id) + _c(password) + _c("") + bytes((0x34, 0, 0)) + _c("")
        return self.call(self.BIND[mode], body)

    @staticmethod
    def submit_sm_body(
        destination: str,
        text: bytes = b"hello",
        *,
        source: str = "36180",
        source_ton: int = 1,
        dest_ton: int = 1,
        service_type: str = "",
        esm_class: int = 0,
        schedule: str = "",
        validity: str = "",
        registered_delivery: int = 0,
        data_coding: int = 0,
        sm_length: int | None = None,
        tlvs: bytes = b"",
    ) -> bytes:
        """A submit_sm body, by hand (spec 4.4.1)."""
        return (
            _c(service_type)
            + bytes((source_ton, 1))
            + _c(source)
            + bytes((dest_ton, 1))
            + _c(destination)
            + bytes((esm_class, 0, 0))
            + _c(schedule)
            + _c(validity)
            + bytes((registered_delivery, 0, data_coding, 0))
            + bytes((len(text) if sm_length is None else sm_length,))
            + text
            + tlvs
        )

    def submit(self, destination: str, text: bytes = b"hello", **kw) -> int:
        """Send a submit_sm without waiting; returns its sequence number."""
        return self.request(0x04, self.submit_sm_body(destination, text, **kw))

    def closed_within(self, timeout: float) -> tuple[bool, list[Frame]]:
        """Read until the server hangs up or `timeout` passes: (closed?, frames read)."""
        frames: list[Frame] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                f = self.read(left)
            except TimeoutError:
                return False, frames
            except (ConnectionResetError, BrokenPipeError):
                return True, frames
            if f is None:
                return True, frames
            frames.append(f)
        return False, frames

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_client():
    """`connect(server) -> RawClient`; all closed after the test. Also carries `frame` and
    `cstring` as attributes, for building PDUs by hand."""
    clients: list[RawClient] = []

    def connect(server: Smsc, timeout: float = 5.0) -> RawClient:
        client = RawClient(server.address, timeout)
        clients.append(client)
        return client

    connect.frame = frame
    connect.cstring = _c
    yield connect
    for client in clients:
        client.close()


# -- carriers ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def free_ports():
    """`free_ports(n) -> [port, …]`: n distinct free loopback ports (each held open until all
    are chosen, so no two are the same)."""

    def pick(n: int) -> list[int]:
        socks = []
        try:
            for _ in range(n):
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                socks.append(s)
            return [s.getsockname()[1] for s in socks]
        finally:
            for s in socks:
                s.close()

    return pick


class SimControl:
    """The HTTP control endpoint of a carrier simulator (in the switch or a `carrier-sim`)."""

    def __init__(self, port: int):
        self.control_port = port

    def _get(self, path: str):
        import json
        import urllib.request

        url = f"http://127.0.0.1:{self.control_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.loads(answer.read())

    def stats(self) -> dict:
        return self._get("/stats")

    def received(self, since: int = 0) -> list[dict]:
        """What it received (submit_sm it accepted), oldest first: GET /received."""
        return self._get(f"/received?since={since}")["records"]

    def mo(self, source: str, to: str, text: str, coding: str | None = None) -> int:
        """A subscriber's message, sent by this carrier to the switch: POST /mo. The number of
        parts it went in."""
        import json
        import urllib.request

        body = {"from": source, "to": to, "text": text}
        if coding is not None:
            body["coding"] = coding
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.control_port}/mo",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 202
            return json.loads(answer.read())["parts"]


class CarrierSim(SimControl):
    """One `smsc carrier-sim` process on a fixed port, killable and restartable there. Each
    life records what it received to a file of its own (`--record`)."""

    def __init__(self, workdir: Path, name: str, port: int, control_port: int, args: list[str]):
        super().__init__(control_port)
        self.workdir = workdir
        self.name = name
        self.port = port
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.lives = 0
        self.log_path = workdir / f"{name}.log"

    @property
    def record_files(self) -> list[Path]:
        return [self.workdir / f"{self.name}-{life}.jsonl" for life in range(1, self.lives + 1)]

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to listen (see `wait_ready`)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.lives += 1
        command = [
            *_smsc_command(), "carrier-sim", "--host", "127.0.0.1", "--port", str(self.port),
            "--name", self.name, "--control-port", str(self.control_port),
            "--record", str(self.record_files[-1]), *self.args,
        ]  # fmt: skip
        with self.log_path.open("a") as log:
            log.write(f"---- life #{self.lives} ----\n")
            self._offset = log.tell()
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=_env(),
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until its control endpoint listens (its SMPP port listens before it)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.log_path.open() as log:
                log.seek(self._offset)
                if f"carrier-sim {self.name} control on" in log.read():
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"carrier-sim {self.name} exited:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"carrier-sim {self.name} not listening:\n{self.log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: what it took and did not answer yet is lost with it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def records(self, life: int | None = None) -> list[dict]:
        """The lines of the record files (of one life, or of all), in order."""
        import json

        files = self.record_files if life is None else [self.record_files[life - 1]]
        lines = []
        for path in files:
            if path.exists():
                lines += [json.loads(line) for line in path.read_text().splitlines() if line]
        return lines

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@pytest.fixture(scope="session")
def sim_control():
    """`sim_control(control_port) -> SimControl`: read a simulator started inside the switch
    (`simulate = true` with `control_port`)."""
    return SimControl


@pytest.fixture(scope="module")
def carrier_sim(tmp_path_factory):
    """Start `smsc carrier-sim` processes: `carrier_sim(name, port, control_port, *args,
    start=True) -> CarrierSim` (`args`: more carrier-sim options). `.kill()`, `.start()` (a
    new life on the same port), `.records()` (what each life recorded), `.stats()`,
    `.received()`. Stopped at the end of the module."""
    sims: list[CarrierSim] = []
    workdir = tmp_path_factory.mktemp("carriers")

    def make(name: str, port: int, control_port: int, *args: str, start: bool = True):
        """`start=False`: launched only; call `wait_ready()` (to start several at once)."""
        sim = CarrierSim(workdir, name, port, control_port, list(args))
        sims.append(sim)
        _SIMS.append(sim)
        sim.launch()
        if start:
            sim.wait_ready()
        return sim

    yield make
    for sim in sims:
        sim.stop()
        _SIMS.remove(sim)


@contextmanager
def serving(server):
    """A socketserver server (http.server's too) answering from a thread of its own until
    the block ends: the tests' stand-ins for the switch's peers (callback URLs, mail relays)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
