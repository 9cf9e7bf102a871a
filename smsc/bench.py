"""`smsc bench`: how many submit_sm/s the switch commits and acknowledges, against the ceiling
of the protocol layer measured in the same run.

The load generator is this process: N binds (transceiver), each keeping W submit_sm
outstanding, on plain non-blocking sockets driven by `selectors`, so that the client is not
what is measured (~7 µs of client CPU a message here; an asyncio Protocol client measured
~8-9 µs; either stays under a third of a core at the echo server's rate). It uses the codec
once, to encode one submit_sm template; each send copies the template and patches the
sequence number and the destination (fictional numbers 33600000001…, shuffled, cycling) with
`struct.pack_into`. Responses are parsed minimally: the header, and that a status-0
submit_sm_resp carries a non-empty message_id. A message's latency is from the send that
carried it to the read that brought its response back.

Both servers run as subprocesses so that the peak RSS reported is theirs alone:
- the switch (`smsc serve` on a temporary config: a SQLite file in a temporary directory,
  port 0, a `bench` account), unless `--target` points at one already running. With
  `--store-url` on PostgreSQL, the run gets a schema of its own in that database (the
  migrations run in it; it is dropped at the end), so that no run sees another's rows;
- the echo server (`python -m smsc.bench_echo`): the same reactor and codec, no session state
  machine, no validation, no store. Its rate is the protocol ceiling; `ratio` is the switch's
  rate over it. `switch_cpu_us_per_msg` and `echo_cpu_us_per_msg`: each server's CPU a
  message (all its threads), what the ratio comes down to once both are CPU-bound.

Each side is warmed up (`warmup` messages, not counted) before the measured run.

`--nodes N` (submit and e2e): N `smsc serve` nodes (`[cluster] node = "bench-<i>"`, each on a
port of its own) share the PostgreSQL store, and the load generator's binds go round robin
over them. `peak_rss_mib` and `switch_cpu_pct` are the nodes' together, `node_peak_rss_mib`
and `node_cpu_pct` each one's (CPU over the measured run, in % of one core).

`--mode e2e`: clients → switch → simulated carriers → receipts back to the clients. The switch
runs on a temporary config with `--carriers` carriers (orange, sfr, bouygues, …; carrier i
takes the prefix 336<i+1>, and the destinations cycle over them), each with `--carrier-binds`
binds (2 per node by default; the nodes share them out) of `--carrier-window`, a
`--carrier-tps` cap high enough not to be the limit, and receipts after `--dlr-delay`. The
simulators run in the switch's process (`simulate = true`, the default for one node: on this
2-core machine it measured the same rate as separate processes, with fewer processes to
start) or as `smsc carrier-sim` processes (`--simulators out`, which all the nodes share, and
the only way with more than one). The run starts once every node holds its part of each
carrier's binds. The same load generator binds as transceivers and submits with
registered_delivery = 1, each bind keeping at most `window` submit_sm unanswered and all of
them at most `--pending` messages not yet receipted (a closed loop: the latency is about
pending ÷ rate). It maps each submit_sm_resp's message_id to its send time, answers every
deliver_sm at once, and reads our id from the receipt's receipted_message_id (or its text's
`id:`), whichever bind (or node) it came by. The rate is the messages receipted ÷ the time
from the first submit to the last receipt; the run ends when every accepted message has its
receipt, or after `--timeout` seconds without a response or a receipt (`complete` false,
`missing` counted). CPU shares are in % of one core; the switch's is also given per message,
which the other load on a shared machine moves less than the rate.

`--mode accept` (in `smsc.bench_accept`): the switch's accept path alone, in this process.

`--mode schedule` (in `smsc.bench_schedule`): the same switch and in-process carriers, each
with its HTTP control endpoint; the load generator submits `--messages` (1,000,000 by
default; 100,000 in the other modes) with registered_delivery 0 and one absolute
schedule_delivery_time, `--due-in` seconds after the start, and no warm-up. It reports the
submit rate, the switch's RSS once started, once everything is queued and after the drain,
the claim query's time against the full queue (and SQLite's plan of it), how long after the
due time the first message reached a carrier (and that none did before), and how many the
carriers took in the `--drain` seconds after it.

`--mode soak` (in `smsc.bench_soak`): --mode e2e's set-up, paced at `--rate` submit_sm/s for
`--duration` seconds, the switch's RSS sampled every few seconds; it fails (exit 1) when the
RSS grew more than `--max-growth` % from the end of the warm-up to the end.
"""

import contextlib
import dataclasses
import math
import os
import random
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .protocol.constants import Command, MessageState, Status, Tag
from .protocol.pdu import Pdu, decode, encode

SYSTEM_ID = "bench"
PASSWORD = "bench"
FIRST_NUMBER = 33600000001
NUMBERS = 100_000  # destinations cycle through this many numbers
_HEADER = struct.Struct(">IIII")
_SEQ = struct.Struct(">I")
_SUBMIT_RESP = int(Command.submit_sm_resp)
_GENERIC_NACK = int(Command.generic_nack)
_ENQUIRE_LINK = int(Command.enquire_link)
_UNBIND = int(Command.unbind)
_LISTENING = re.compile(rb"listening on ([0-9.]+):(\d+)")


class BenchError(Exception):
    """The benchmark could not run (a server did not start, a bind failed, a stall)."""


class Overdue(BenchError):
    """The load generator's run did not end by its deadline."""


@dataclass
class Options:
    mode: str = "submit"
    binds: int = 8
    window: int = 10
    messages: int | None = None  # None: the mode's default (MESSAGES)
    warmup: int | None = None  # None: a tenth of messages, at most 5000
    target: str | None = None  # HOST:PORT of a running switch
    system_id: str = SYSTEM_ID
    password: str = PASSWORD
    pid: int | None = None  # the target's, for its peak RSS
    store_url: str | None = None  # None: a SQLite file in a temporary directory
    nodes: int = 1  # `smsc serve` processes on the store (PostgreSQL for more than one)
    ceiling: bool = True  # also measure the echo server
    timeout: float = 60.0  # seconds without any response before giving up
    # --mode e2e
    carriers: int = 3  # simulated carriers; the destinations cycle over them
    # "in": in the switch's process (simulate = true); "out": processes; None: "in" for one
    # node, "out" for more (each node would start the in-process ones on the same ports)
    simulators: str | None = None
    carrier_binds: int | None = None  # the switch's binds to each carrier; None: 2 per node
    carrier_window: int = 100  # outstanding submit_sm per carrier bind
    carrier_tps: int = 100_000  # each carrier's cap in the switch's config (not the limit)
    dlr_delay: float = 0.1  # seconds before a simulated carrier sends its receipt
    pending: int = 1000  # most messages submitted and not yet receipted, in all; 0: no cap
    mixed_ids: bool = False  # a carrier with decimal ids in responses and hex in receipts
    # --mode schedule
    due_in: float | None = None  # seconds from the start to the due time; None: see there
    drain: float = 20.0  # seconds the carriers' intake is watched from the due time
    # --mode soak (in `smsc.bench_soak`)
    duration: float = 600.0  # seconds of steady load
    rate: int = 300  # submit_sm/s, well under what the switch can do
    max_growth: float = 10.0  # % of RSS growth from the warm-up to the end: more fails the run


# Each mode's default number of messages.
MESSAGES = {"submit": 100_000, "accept": 100_000, "e2e": 100_000, "schedule": 1_000_000}


@dataclass
class Phase:
    """What one measured run of the load generator saw."""

    messages: int
    accepted: int
    refused: Counter
    latencies: list[int]  # nanoseconds, one per answered message
    elapsed: float
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.accepted / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, p: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)] / 1e6


# -- the load generator ----------------------------------------------------------------------


def submit_numbers() -> list[bytes]:
    """The destinations of --mode submit and accept: fictional numbers in no order, as a real
    list's: each message lands at its own place in the store's (account, destination) index,
    not next to the one before."""
    numbers = [str(FIRST_NUMBER + i).encode() for i in range(NUMBERS)]
    random.Random(NUMBERS).shuffle(numbers)
    return numbers


def _template(
    registered_delivery: int = 0, first: str = str(FIRST_NUMBER), schedule: str = ""
) -> tuple[bytes, int]:
    """One encoded submit_sm, and the offset of its destination digits. `schedule`: its
    schedule_delivery_time (an SMPP time; empty: at once)."""
    pdu = Pdu(
        Command.submit_sm,
        1,
        0,
        {
            "source_addr_ton": 5,
            "source_addr": "SMSCBENCH",
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": first,
            "schedule_delivery_time": schedule,
            "registered_delivery": registered_delivery,
            "short_message": b"smsc bench: a fictional message of moderate length",
        },
    )
    raw = encode(pdu)
    return raw, raw.index(first.encode() + b"\0")


class _Bind:
    """One client connection and what it has outstanding (sequence → send time)."""

    __slots__ = ("sock", "address", "sequence", "sent", "rest", "out", "writing")

    def __init__(self, sock: socket.socket, address: tuple[str, int]):
        self.sock = sock
        self.address = address
        self.sequence = 0
        self.sent: dict[int, int] = {}
        self.rest = b""
        self.out = b""  # what a full socket buffer did not take yet
        self.writing = False


class LoadGenerator:
    def __init__(
        self,
        host: str,
        port: int,
        binds: int,
        window: int,
        timeout: float = 60.0,
        *,
        registered_delivery: int = 0,
        numbers: list[bytes] | None = None,
        schedule: str = "",
        others: tuple[tuple[str, int], ...] = (),
    ):
        """`others`: more nodes of the switch; the binds go round robin over them all."""
        self.addresses = [(host, port), *others]
        self.window = window
        self.timeout = timeout
        self._nbinds = binds
        self._binds: list[_Bind] = []
        self._selector = selectors.DefaultSelector()
        if numbers is None:
            numbers = submit_numbers()
        self._numbers = numbers
        self._template, self._dest_at = _template(
            registered_delivery, numbers[0].decode(), schedule
        )
        self._next_number = 0

    # -- bind and unbind ---------------------------------------------------------------

    def bind(self, system_id: str, password: str) -> None:
        for i in range(self._nbinds):
            address = self.addresses[i % len(self.addresses)]
            sock = socket.create_connection(address, timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._binds.append(_Bind(sock, address))  # closed by close() even if the bind fails
            params = {"system_id": system_id, "password": password, "interface_version": 0x34}
            sock.sendall(encode(Pdu(Command.bind_transceiver, 1, 0, params)))
            resp = decode(_read_pdu(sock))
            if not isinstance(resp, Pdu) or resp.command is not Command.bind_transceiver_resp:
                raise BenchError(f"bind to {address}: unexpected answer {resp!r}")
            if resp.status:
                raise BenchError(f"bind to {address} refused: {_status_name(resp.status)}")
        for b in self._binds:
            b.sequence = 1
            b.sock.setblocking(False)
            self._selector.register(b.sock, selectors.EVENT_READ, b)

    def close(self) -> None:
        """Unbind politely (best effort), then close."""
        for b in self._binds:
            with contextlib.suppress(OSError):
                b.sock.setblocking(True)
                b.sock.settimeout(2)
                b.sequence += 1
                b.sock.sendall(encode(Pdu(Command.unbind, b.sequence)))
                _read_pdu(b.sock)  # unbind_resp, or whatever was still in flight
            b.sock.close()
        self._binds.clear()
        self._selector.close()

    # -- the run -----------------------------------------------------------------------

    def run(self, messages: int, deadline: float | None = None) -> Phase:
        """Submit `messages` across the binds, each keeping at most `window` outstanding; return
        once every one of them is answered. Raises Overdue if they are not all answered by
        `deadline` (a time.time())."""
        refused: Counter = Counter()
        latencies: list[int] = []
        budget = messages
        waiting = messages
        accepted = 0
        cpu0, t0 = time.process_time(), time.perf_counter()
        for b in self._binds:
            n = min(self.window, budget)
            if n:
                self._submit(b, n)
                budget -= n
        select = self._selector.select
        idle = 0.0
        while waiting:
            if deadline is not None and time.time() >= deadline:
                raise Overdue(f"{waiting} of {messages} messages still unanswered at the deadline")
            events = select(0.5)
            if not events:
                idle += 0.5
                if idle >= self.timeout:
                    raise BenchError(
                        f"no response for {self.timeout:.0f} s ({waiting} of {messages} "
                        "messages unanswered)"
                    )
                continue
            idle = 0.0
            for key, mask in events:
                b = key.data
                if mask & selectors.EVENT_WRITE:
                    self._write_more(b)
                if not mask & selectors.EVENT_READ:
                    continue
                answered, ok = self._read(b, refused, latencies)
                waiting -= answered
                accepted += ok
                n = min(answered, budget)
                if n:
                    self._submit(b, n)
                    budget -= n
        elapsed = time.perf_counter() - t0
        return Phase(messages, accepted, refused, latencies, elapsed, time.process_time() - cpu0)

    def _submit(self, b: _Bind, n: int) -> None:
        """Send n submit_sm in one write."""
        size = len(self._template)
        chunk = bytearray(self._template * n)
        seq = b.sequence
        numbers, k, count = self._numbers, self._next_number, len(self._numbers)
        pack, dest_at, width = _SEQ.pack_into, self._dest_at, len(numbers[0])
        for i in range(n):
            at = i * size
            pack(chunk, at + 12, seq + i)
            chunk[at + dest_at : at + dest_at + width] = numbers[(k + i) % count]
        self._next_number = (k + n) % count
        b.sequence = seq + n
        now = time.perf_counter_ns()
        b.sent.update(dict.fromkeys(range(seq, seq + n), now))
        self._write(b, bytes(chunk))

    def _write(self, b: _Bind, data: bytes) -> None:
        if b.out:
            b.out += data
            return
        try:
            sent = b.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as e:
            raise BenchError(f"connection to {b.address} failed: {e}") from None
        if sent < len(data):
            b.out = data[sent:]
            if not b.writing:
                b.writing = True
                self._selector.modify(b.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, b)

    def _write_more(self, b: _Bind) -> None:
        data, b.out = b.out, b""
        if data:
            self._write(b, data)
        if not b.out and b.writing:
            b.writing = False
            self._selector.modify(b.sock, selectors.EVENT_READ, b)

    def _read(self, b: _Bind, refused: Counter, latencies: list[int]) -> tuple[int, int]:
        """Take what arrived: (submit_sm answered, of which accepted)."""
        try:
            data = b.sock.recv(65536)  # below malloc's mmap threshold
        except BlockingIOError:
            return 0, 0
        except OSError as e:
            raise BenchError(f"connection to {b.address} failed: {e}") from None
        if not data:
            raise BenchError(f"{b.address} closed the connection")
        now = time.perf_counter_ns()
        if b.rest:
            data = b.rest + data
        sent, record = b.sent, latencies.append
        unpack = _HEADER.unpack_from
        pos, size = 0, len(data)
        answered = ok = 0
        while size - pos >= 16:
            length, command, status, seq = unpack(data, pos)
            if length < 16:
                raise BenchError(f"{b.address} sent a PDU of command_length {length}")
            if size - pos < length:
                break
            if command in (_SUBMIT_RESP, _GENERIC_NACK):
                start = sent.pop(seq, None)
                if start is not None:
                    record(now - start)
                    answered += 1
                    if status:
                        refused[status] += 1
                    elif length > 17 and data[pos + 16]:
                        ok += 1
                    else:
                        refused["empty message_id"] += 1
            elif command == _ENQUIRE_LINK:
                self._write(b, _HEADER.pack(16, _ENQUIRE_LINK | 0x80000000, 0, seq))
            elif command == _UNBIND:
                raise BenchError(f"{b.address} unbound the session")
            pos += length
        b.rest = data[pos:]
        return answered, ok


def _read_pdu(sock: socket.socket) -> bytes:
    head = _recv_exactly(sock, 4)
    length = int.from_bytes(head, "big")
    if not 16 <= length <= 65536:
        raise BenchError(f"PDU of command_length {length}")
    return head + _recv_exactly(sock, length - 4)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            raise BenchError("connection closed during the bind")
        data += more
    return data


def _status_name(status) -> str:
    if isinstance(status, str):
        return status
    try:
        return "ESME_" + Status(status).name
    except ValueError:
        return f"0x{status:08x}"


# -- the servers -----------------------------------------------------------------------------


class _Process:
    """A server subprocess whose log goes to a file; `address` is read from its log."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log: Path,
        timeout: float = 60.0,
        listening: re.Pattern = _LISTENING,
    ):
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while True:
            match = listening.search(log.read_bytes())
            if match:
                self.address = (match[1].decode(), int(match[2]))
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"{name} did not start:\n{self.tail()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM of a process (Linux), in MiB: its peak RSS so far."""
    return _status_mib(pid, "VmHWM")


def rss_mib(pid: int) -> float | None:
    """VmRSS of a process (Linux), in MiB: its RSS now."""
    return _status_mib(pid, "VmRSS")


def _status_mib(pid: int, field: str) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    return round(int(match[1]) / 1024, 1) if match else None


def _prepare_store(url: str, binds: int) -> None:
    """`db upgrade`, and the bench account with room for the binds (the `[[accounts]]` config
    section cannot set max_binds, and the default of 10 would refuse `--binds 40`)."""
    from .store import accounts, db

    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        with db.writing(engine) as conn:
            max_binds = max(binds, accounts.DEFAULT_MAX_BINDS)
            if accounts.get(conn, SYSTEM_ID) is None:
                accounts.add(conn, SYSTEM_ID, PASSWORD, time.time(), max_binds=max_binds)
            else:
                accounts.change(
                    conn, SYSTEM_ID, password=PASSWORD, max_binds=max_binds, tps=0, enabled=True
                )
    finally:
        engine.dispose()


def _count_rows(url: str, state: str | None = None) -> int:
    """Messages in the store; with `state`, those in that state."""
    from sqlalchemy import func, select

    from .store import db
    from .store.schema import messages

    query = select(func.count()).select_from(messages)
    if state is not None:
        query = query.where(messages.c.state == state)
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _store(opts: Options, workdir: Path):
    """The switch's store for one run, as (url, whether it is the bench's own): a SQLite file in
    `workdir` by default; on PostgreSQL, a schema of its own in the database `--store-url`
    names, dropped afterwards, so that no run sees another's rows (nor the database's tables);
    a SQLite url as it is."""
    if opts.store_url is None:
        yield f"sqlite:///{workdir / 'bench.db'}", True
        return
    if store_kind(opts.store_url) != "postgresql":
        yield opts.store_url, False
        return
    from sqlalchemy import make_url, text

    from .store import db

    schema = f"smsc_bench_{os.getpid()}_{time.time_ns()}"
    admin = db.make_engine(opts.store_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        # Also the connections' application_name: any left open are ended before the drop.
        query = {"options": f"-csearch_path={schema}", "application_name": schema}
        try:
            url = make_url(opts.store_url).update_query_dict(query)
            yield url.render_as_string(hide_password=False), True
        finally:
            with admin.begin() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :s"
                    ),
                    {"s": schema},
                )
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()


def _node_config(url: str, window: int, node: int) -> list[str]:
    """The config lines each node starts with: a free port (read from its log), the store, and
    a name of its own among the nodes."""
    return [
        "[smpp]",
        'host = "127.0.0.1"',
        "port = 0",
        f"window = {max(window, 50)}",
        "",
        "[store]",
        f"url = {_toml_string(url)}",
        "",
        "[cluster]",
        f'node = "bench-{node}"',
    ]


def _start_node(workdir: Path, config: str, node: int) -> _Process:
    path = workdir / f"bench-{node}.toml"
    path.write_text(config)
    argv = [sys.executable, "-c", "from smsc.cli import main; main()", "--config", str(path)]
    return _Process(
        f"smsc serve bench-{node}",
        argv + ["serve"],
        workdir / f"serve-{node}.log",
        listening=_SWITCH_LISTENING,
    )


def _start_nodes(cleanup: contextlib.ExitStack, workdir: Path, configs: list[str]) -> list:
    """One node per config, each stopped by `cleanup`."""
    nodes = []
    for i, config in enumerate(configs):
        nodes.append(_start_node(workdir, config, i))
        cleanup.callback(nodes[-1].stop)
    return nodes


def _logs(nodes: list[_Process]) -> str:
    """The end of each node's log, for an error."""
    return "".join(f"\n-- {node.name} log --\n{node.tail()}" for node in nodes)


def _start_echo(workdir: Path) -> _Process:
    argv = [sys.executable, "-m", "smsc.bench_echo", "--host", "127.0.0.1", "--port", "0"]
    return _Process("the echo server", argv, workdir / "echo.log")


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def store_kind(url: str | None) -> str:
    if not url:
        return "unknown"
    return url.split(":", 1)[0].split("+", 1)[0]


# -- the whole benchmark ---------------------------------------------------------------------


def _load(opts: Options, addresses: list, system_id: str, password: str, warmup: int, pids=()):
    """The measured run, the binds round robin over `addresses`; and the CPU seconds each of
    `pids` spent in it."""
    gen = LoadGenerator(
        *addresses[0], opts.binds, opts.window, opts.timeout, others=tuple(addresses[1:])
    )
    try:
        gen.bind(system_id, password)
        if warmup:
            gen.run(warmup)
        cpu0 = [_cpu_seconds(pid) for pid in pids]
        phase = gen.run(opts.messages)
        return phase, _cpu_since(cpu0, pids)
    finally:
        gen.close()


def check_nodes(opts: Options) -> None:
    if opts.nodes < 1:
        raise BenchError("--nodes must be at least 1")
    if opts.nodes == 1:
        return
    if opts.mode not in ("submit", "e2e"):
        raise BenchError(f"--nodes: --mode submit or e2e, not {opts.mode}")
    if opts.target is not None:
        raise BenchError("--nodes starts its own switch: no --target")
    if store_kind(opts.store_url) != "postgresql":
        raise BenchError(
            "--nodes: the nodes share a PostgreSQL store (--store-url postgresql+psycopg://…); "
            "a SQLite store serves one node"
        )
    if opts.binds < opts.nodes:
        raise BenchError("--binds must be at least --nodes (the binds go round robin over them)")
    if opts.mode == "e2e" and opts.simulators != "out":
        raise BenchError("--nodes: --simulators out (each node would start its own on one port)")
    if opts.mode == "e2e" and opts.carrier_binds < opts.nodes:
        raise BenchError(
            "--carrier-binds must be at least --nodes (a carrier's binds are shared out among "
            "the nodes)"
        )


def resolve(opts: Options) -> Options:
    """The options with their defaults filled in, checked."""
    if opts.mode not in MESSAGES:
        raise BenchError(f"unknown mode {opts.mode!r}")
    if opts.messages is None:
        opts = dataclasses.replace(opts, messages=MESSAGES[opts.mode])
    if opts.simulators is None:
        opts = dataclasses.replace(opts, simulators="out" if opts.nodes > 1 else "in")
    if opts.carrier_binds is None:
        opts = dataclasses.replace(opts, carrier_binds=2 * opts.nodes)
    if opts.binds < 1 or opts.window < 1 or opts.messages < 1:
        raise BenchError("--binds, --window and --messages must be at least 1")
    check_nodes(opts)
    return opts


def run(opts: Options) -> dict:
    """Run the benchmark; the one JSON-able dict it prints."""
    if opts.mode == "soak":
        from .bench_soak import run_soak

        return run_soak(opts)
    opts = resolve(opts)
    if opts.mode == "schedule":
        from .bench_schedule import run_schedule

        return run_schedule(opts)
    warmup = min(opts.messages // 10, 5000) if opts.warmup is None else opts.warmup
    if opts.mode == "e2e":
        return _run_e2e(opts, warmup)
    if opts.mode == "accept":
        from .bench_accept import run_accept

        return run_accept(opts, warmup)
    target = None
    if opts.target is not None:
        host, _, port_text = opts.target.rpartition(":")
        if not host or not port_text.isdigit():
            raise BenchError(f"--target {opts.target!r} is not HOST:PORT")
        target = (host, int(port_text))
    result: dict = {
        "mode": opts.mode,
        "nodes": opts.nodes,
        "binds": opts.binds,
        "window": opts.window,
        "messages": opts.messages,
        "warmup": warmup,
        "python": ".".join(map(str, sys.version_info[:3])),
        "store": store_kind(opts.store_url or (None if target else "sqlite")),
    }
    with contextlib.ExitStack() as cleanup:  # in reverse: the servers, the store, the directory
        workdir = Path(tempfile.mkdtemp(prefix="smsc-bench-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        # The ceiling first: the switch's store then starts the measured run as it would.
        if opts.ceiling:
            echo = _start_echo(workdir)
            cleanup.callback(echo.stop)
            ceiling, echo_cpu = _load(opts, [echo.address], "echo", "echo", warmup, [echo.pid])
            ceiling_rss = peak_rss_mib(echo.pid)
            echo.stop()
        nodes: list[_Process] = []
        if target is None:
            url, ours = cleanup.enter_context(_store(opts, workdir))
            _prepare_store(url, opts.binds)
            configs = [_node_config(url, opts.window, i) for i in range(opts.nodes)]
            nodes = _start_nodes(cleanup, workdir, ["\n".join(c) + "\n" for c in configs])
            addresses, pids = [node.address for node in nodes], [node.pid for node in nodes]
            system_id, password = SYSTEM_ID, PASSWORD
        else:
            ours, addresses, pids = False, [target], [opts.pid] if opts.pid else []
            system_id, password = opts.system_id, opts.password
        try:
            phase, cpu = _load(opts, addresses, system_id, password, warmup, pids)
        except BenchError as e:
            raise BenchError(f"{e}{_logs(nodes)}") from None
        rss = [peak_rss_mib(pid) for pid in pids]
        for node in nodes:
            node.stop()
        if ours:
            result["stored"] = _count_rows(url)
        result.update(
            accepted=phase.accepted,
            refused={_status_name(s): n for s, n in sorted(phase.refused.items(), key=str)},
            accepted_per_s=round(phase.rate),
            p50_ms=_round(phase.percentile_ms(0.50)),
            p99_ms=_round(phase.percentile_ms(0.99)),
            peak_rss_mib=_round(_sum(rss)),  # the nodes' together
            elapsed_s=round(phase.elapsed, 3),
            client_cpu_pct=round(100 * phase.client_cpu / phase.elapsed, 1),
            **_node_fields(rss, cpu, phase.elapsed),
            switch_cpu_us_per_msg=_per_message(_sum(cpu), phase.accepted),
        )
        if opts.ceiling:
            result.update(
                echo_per_s=round(ceiling.rate),
                echo_p50_ms=_round(ceiling.percentile_ms(0.50)),
                echo_p99_ms=_round(ceiling.percentile_ms(0.99)),
                echo_peak_rss_mib=ceiling_rss,
                echo_client_cpu_pct=round(100 * ceiling.client_cpu / ceiling.elapsed, 1),
                echo_cpu_pct=_pct(echo_cpu[0], ceiling.elapsed),
                echo_cpu_us_per_msg=_per_message(echo_cpu[0], ceiling.accepted),
                ratio=round(phase.rate / ceiling.rate, 3) if ceiling.rate else None,
            )
        return result


def _node_fields(rss: list, cpu: list, elapsed: float) -> dict:
    """The switch's CPU in % of one core over the measured run, all nodes together; and each
    node's CPU and peak RSS."""
    return {
        "switch_cpu_pct": _pct(_sum(cpu), elapsed),
        "node_cpu_pct": [_pct(c, elapsed) for c in cpu],
        "node_peak_rss_mib": rss,
    }


def _per_message(cpu: float | None, messages: int, scale=1e6, digits=1) -> float | None:
    """CPU seconds a message, in µs (or the `scale`'s unit): what bounds the rate once the
    CPU is what limits it, and moves less than the rate with the machine's other load."""
    return None if cpu is None or not messages else round(scale * cpu / messages, digits)


def _sum(values: list) -> float | None:
    """None if any is unknown (or there are none)."""
    return None if not values or None in values else sum(values)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# -- end to end: clients → switch → simulated carriers → receipts back -----------------------

CARRIER_NAMES = ("orange", "sfr", "bouygues", "free", "transatel", "lebara", "lyca", "nrj", "syma")
# Each carrier's (id_format, receipt_id_format): hex or decimal ids, upper case and zero-padded
# in the submit_sm_resp and not in the receipt, so that the switch's normalising is measured.
_ID_FORMATS = (("hex", "hex"), ("dec", "dec"))
# With --mixed-ids, as in conf/demo.toml: the second carrier answers in decimal and writes its
# receipts in hex, so that the matching of converted ids is exercised too.
_MIXED_ID_FORMATS = (("hex", "hex"), ("dec", "hex"), ("dec", "dec"))


def _id_formats(opts: "Options", i: int) -> tuple[str, str]:
    formats = _MIXED_ID_FORMATS if opts.mixed_ids else _ID_FORMATS
    return formats[i % len(formats)]


_DELIVER_SM = int(Command.deliver_sm)
_DELIVER_SM_RESP = int(Command.deliver_sm_resp)
_TLV = struct.Struct(">HH")
_RECEIPTED_MESSAGE_ID = int(Tag.receipted_message_id)
_MESSAGE_STATE = int(Tag.message_state)
_DELIVERED = int(MessageState.DELIVERED)
_TEXT_ID = re.compile(rb"id:\s*([^\s\0]+)")
_SWITCH_LISTENING = re.compile(rb"SMPP listening on ([0-9.]+):(\d+)")
_SIM_LISTENING = re.compile(rb"carrier-sim \S+ listening on ([0-9.]+):(\d+)")
_CARRIER_BOUND = re.compile(rb"carrier (\w+) bound \(")
_CARRIER_CLOSED = re.compile(rb"carrier (\w+) link closed")


def e2e_numbers(carriers: int) -> list[bytes]:
    """Destinations that cycle over the carriers: carrier i (from 0) takes prefix 336<i+1>
    (fictional 11-digit numbers, as in --mode submit)."""
    return [f"336{k % carriers + 1}{k:07d}".encode() for k in range(NUMBERS)]


@dataclass
class E2EPhase:
    """What one measured end-to-end run saw. Times in nanoseconds."""

    messages: int
    submitted: int
    accepted: int
    refused: Counter
    receipted: int  # accepted messages whose receipt came (each counted once)
    duplicates: int  # receipts again for a message already receipted
    unknown: int  # receipts for ids this phase never got in a submit_sm_resp
    undelivered: int  # receipts whose message_state is not DELIVERED
    missing: int  # accepted and never receipted, or submitted and never answered
    resp_latencies: list[int]  # submit → submit_sm_resp
    receipt_latencies: list[int]  # submit → receipt
    elapsed: float  # seconds from the first submit to the last receipt
    client_cpu: float
    stalled: bool

    @property
    def rate(self) -> float:
        return self.receipted / self.elapsed if self.elapsed > 0 else 0.0


def _percentile_ms(values: list[int], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)] / 1e6


class E2EGenerator(LoadGenerator):
    """The load generator of --mode e2e: transceiver binds submitting with registered_delivery
    = 1, each keeping at most `window` submit_sm unanswered (and, with `pending`, at most that
    many messages not yet receipted in all), answering every deliver_sm at once, and matching
    receipts (receipted_message_id, else the text's id:) to the ids of the submit_sm_resp."""

    def __init__(self, host, port, binds, window, timeout, numbers, pending: int = 0, others=()):
        super().__init__(
            host, port, binds, window, timeout, registered_delivery=1, numbers=numbers,
            others=others,
        )  # fmt: skip
        self.pending = pending
        self._receipted: set[bytes] = set()  # every id receipted, across phases

    def _new_phase(self) -> None:
        """The counts of a phase, from zero (`run`'s, and --mode soak's)."""
        self._refused: Counter = Counter()
        self._accepted = self._receipted_now = 0
        self._duplicates = self._undelivered = 0
        self._waiting: dict[bytes, int] = {}  # our id → submit time, until its receipt
        self._early: dict[bytes, int] = {}  # id → receipt time, for receipts before their resp
        self._resp_latencies: list[int] = []
        self._receipt_latencies: list[int] = []
        self._unanswered = 0  # submit_sm without their response yet
        self._last_receipt = 0

    def run(self, messages: int) -> E2EPhase:
        """Submit `messages`; return once every accepted one is receipted, or after `timeout`
        seconds without any progress (stalled: what is left is counted as missing)."""
        self._new_phase()
        budget = messages
        window, cap = self.window, self.pending
        binds, waiting = self._binds, self._waiting
        select = self._selector.select
        cpu0 = time.process_time()
        start = time.perf_counter_ns()
        # Progress is a response or a receipt: the switch's enquire_link do not count.
        progress, seen = time.monotonic(), (0, 0)
        stalled = False
        while True:
            if budget:
                room = cap - self._unanswered - len(waiting) if cap else budget
                for b in binds:
                    n = min(window - len(b.sent), budget, room)
                    if n > 0:
                        self._submit(b, n)
                        self._unanswered += n
                        budget -= n
                        room -= n
            elif not self._unanswered and not waiting:
                break
            for key, mask in select(0.5):
                b = key.data
                if mask & selectors.EVENT_WRITE:
                    self._write_more(b)
                if mask & selectors.EVENT_READ:
                    self._read_e2e(b)
            now = (len(self._resp_latencies), self._receipted_now)
            if now != seen:
                progress, seen = time.monotonic(), now
            elif time.monotonic() - progress >= self.timeout:
                stalled = True
                break
        end = self._last_receipt or time.perf_counter_ns()
        return self._phase(messages, messages - budget, waiting, (end - start) / 1e9, cpu0, stalled)

    def _phase(self, messages, submitted, waiting, elapsed, cpu0, stalled) -> "E2EPhase":
        """What the phase that started at process time `cpu0` counted."""
        return E2EPhase(
            messages=messages,
            submitted=submitted,
            accepted=self._accepted,
            refused=self._refused,
            receipted=self._receipted_now,
            duplicates=self._duplicates,
            unknown=len(self._early),
            undelivered=self._undelivered,
            missing=len(waiting) + self._unanswered,
            resp_latencies=self._resp_latencies,
            receipt_latencies=self._receipt_latencies,
            elapsed=elapsed,
            client_cpu=time.process_time() - cpu0,
            stalled=stalled,
        )

    def _read_e2e(self, b: _Bind) -> None:
        try:
            data = b.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            raise BenchError(f"connection to {b.address} failed: {e}") from None
        if not data:
            raise BenchError(f"{b.address} closed the connection")
        now = time.perf_counter_ns()
        if b.rest:
            data = b.rest + data
        sent, waiting, early = b.sent, self._waiting, self._early
        unpack = _HEADER.unpack_from
        pos, size = 0, len(data)
        answers = []
        while size - pos >= 16:
            length, command, status, seq = unpack(data, pos)
            if length < 16:
                raise BenchError(f"{b.address} sent a PDU of command_length {length}")
            if size - pos < length:
                break
            if command == _DELIVER_SM:
                answers.append(_HEADER.pack(17, _DELIVER_SM_RESP, 0, seq) + b"\0")
                self._receipt(data, pos, length, now)
            elif command in (_SUBMIT_RESP, _GENERIC_NACK):
                start = sent.pop(seq, None)
                if start is not None:
                    self._unanswered -= 1
                    self._resp_latencies.append(now - start)
                    end = data.find(b"\0", pos + 16, pos + length) if length > 17 else -1
                    if status:
                        self._refused[status] += 1
                    elif end <= pos + 16:
                        self._refused["empty message_id"] += 1
                    else:
                        self._accepted += 1
                        message_id = data[pos + 16 : end]
                        came = early.pop(message_id, None)
                        if came is None:
                            waiting[message_id] = start
                        else:  # its receipt overtook it (on another bind)
                            self._receipted.add(message_id)
                            self._receipted_now += 1
                            self._receipt_latencies.append(came - start)
            elif command == _ENQUIRE_LINK:
                answers.append(_HEADER.pack(16, _ENQUIRE_LINK | 0x80000000, 0, seq))
            elif command == _UNBIND:
                raise BenchError(f"{b.address} unbound the session")
            pos += length
        b.rest = data[pos:]
        if answers:
            self._write(b, b"".join(answers))

    def _receipt(self, data: bytes, pos: int, length: int, now: int) -> None:
        """A deliver_sm: if it is a receipt, match it by our id."""
        end = pos + length
        try:
            p = data.index(0, pos + 16, end) + 3  # service_type, source ton and npi
            p = data.index(0, p, end) + 3  # source_addr, dest ton and npi
            p = data.index(0, p, end) + 1  # destination_addr
            esm_class = data[p]
            p = data.index(0, p + 3, end) + 1  # esm_class, protocol_id, priority; schedule
            p = data.index(0, p, end) + 5  # validity_period, 4 one-octet fields
            text = data[p + 1 : p + 1 + data[p]]
            p += 1 + data[p]
        except (ValueError, IndexError):
            self._early.setdefault(b"(unreadable deliver_sm)", now)
            return
        if not esm_class & 0x04:
            return  # not a receipt (a subscriber's reply): answered, not counted
        message_id = state = None
        while p + 4 <= end:
            tag, size = _TLV.unpack_from(data, p)
            if tag == _RECEIPTED_MESSAGE_ID:
                message_id = data[p + 4 : p + 4 + size].rstrip(b"\0")
            elif tag == _MESSAGE_STATE and size == 1:
                state = data[p + 4]
            p += 4 + size
        if not message_id:
            match = _TEXT_ID.search(text)
            message_id = match[1] if match else b"(no id)"
            if state is None and b"stat:DELIVRD" not in text:
                state = -1
        if state is not None and state != _DELIVERED:
            self._undelivered += 1
        if message_id in self._receipted:
            self._duplicates += 1
            return
        start = self._waiting.pop(message_id, None)
        if start is None:
            self._early.setdefault(message_id, now)
            return
        self._receipted.add(message_id)
        self._receipted_now += 1
        self._receipt_latencies.append(now - start)
        self._last_receipt = now


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_carrier_sims(workdir: Path, opts: Options) -> list[_Process]:
    sims = []
    try:
        for i in range(opts.carriers):
            name = CARRIER_NAMES[i]
            id_format, receipt_format = _id_formats(opts, i)
            argv = [
                sys.executable, "-c", "from smsc.cli import main; main()", "carrier-sim",
                "--host", "127.0.0.1", "--port", "0", "--name", name,
                "--id-format", id_format, "--receipt-id-format", receipt_format,
                "--dlr-delay", str(opts.dlr_delay),
            ]  # fmt: skip
            sims.append(
                _Process(
                    f"carrier-sim {name}",
                    argv,
                    workdir / f"sim-{name}.log",
                    listening=_SIM_LISTENING,
                )  # fmt: skip
            )
    except BaseException:
        for sim in sims:
            sim.stop()
        raise
    return sims


def _e2e_config(
    opts: Options,
    url: str,
    ports: list[int],
    control_ports: list[int] | None = None,
    node: int = 0,
) -> str:
    """Node `node`'s config: one carrier per port, prefix 336<i+1> each; with `control_ports`,
    each in-process simulator's HTTP control endpoint on one of them."""
    lines = _node_config(url, opts.window, node)
    for i, port in enumerate(ports):
        id_format, receipt_format = _id_formats(opts, i)
        lines += [
            "",
            "[[carriers]]",
            f'name = "{CARRIER_NAMES[i]}"',
            'host = "127.0.0.1"',
            f"port = {port}",
            f"binds = {opts.carrier_binds}",
            f"window = {opts.carrier_window}",
            f"tps = {opts.carrier_tps}",
            f'prefixes = ["336{i + 1}"]',
            f"priority = {i + 1}",
            f"simulate = {'true' if opts.simulators == 'in' else 'false'}",
            "[carriers.simulator]",
            f'id_format = "{id_format}"',
            f'receipt_id_format = "{receipt_format}"',
            f"dlr_delay = {opts.dlr_delay!r}",
        ]
        if control_ports:
            lines.append(f"control_port = {control_ports[i]}")
    return "\n".join(lines) + "\n"


def _start_e2e_switch(
    workdir: Path,
    opts: Options,
    url: str,
    ports: list[int],
    control_ports: list[int] | None = None,
) -> _Process:
    """One node, once its carriers are bound."""
    switch = _start_node(workdir, _e2e_config(opts, url, ports, control_ports), 0)
    try:
        _wait_for_carriers([switch], opts)
    except BaseException:
        switch.stop()
        raise
    return switch


def _wait_for_carriers(nodes: list[_Process], opts: Options, timeout: float = 30.0) -> None:
    """Every carrier bind up before the first submit, and shared out: each node holds at least
    one of each carrier's binds and at most its fair part, ceil(binds / nodes). (The node that
    starts first takes them all, and gives back what is over once it sees the others.)"""
    fair = math.ceil(opts.carrier_binds / len(nodes))
    names = [name.encode() for name in CARRIER_NAMES[: opts.carriers]]
    deadline = time.monotonic() + timeout
    while True:
        held = [_carrier_links(node.log.read_bytes()) for node in nodes]
        if all(
            sum(links[name] for links in held) == opts.carrier_binds
            and all(1 <= links[name] <= fair for links in held)
            for name in names
        ):
            return
        if any(node.proc.poll() is not None for node in nodes) or time.monotonic() > deadline:
            raise BenchError(f"the switch's carrier links did not all bind:{_logs(nodes)}")
        time.sleep(0.05)


def _carrier_links(log: bytes) -> Counter:
    """Each carrier's links bound now, by a node's log."""
    links = Counter(_CARRIER_BOUND.findall(log))
    links.subtract(_CARRIER_CLOSED.findall(log))
    return links


def check_carriers(opts: Options) -> None:
    """The options of the modes that start a switch with simulated carriers."""
    if opts.target is not None:
        raise BenchError(f"--mode {opts.mode} starts its own switch and carriers: no --target")
    if not 1 <= opts.carriers <= len(CARRIER_NAMES):
        raise BenchError(f"--carriers must be between 1 and {len(CARRIER_NAMES)}")
    if opts.simulators not in ("in", "out"):
        raise BenchError("--simulators must be in or out")
    if opts.carrier_binds < 1 or opts.carrier_window < 1 or opts.carrier_tps < 1:
        raise BenchError("--carrier-binds, --carrier-window and --carrier-tps: at least 1")


def carrier_fields(opts: Options) -> dict:
    """The carriers' options, as the modes that start them report them."""
    return {
        "carriers": opts.carriers,
        "simulators": "in-process" if opts.simulators == "in" else "subprocesses",
        "carrier_binds": opts.carrier_binds,
        "carrier_window": opts.carrier_window,
        "carrier_tps": opts.carrier_tps,
        "dlr_delay_s": opts.dlr_delay,
    }


@contextlib.contextmanager
def e2e_switch(opts: Options, count: int):
    """A temporary store, the carrier simulators and `count` switch nodes for an end-to-end
    run, ready (carriers bound): (store url, nodes, simulators); all stopped and removed
    after, in reverse."""
    with contextlib.ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="smsc-bench-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        url, _ = cleanup.enter_context(_store(opts, workdir))
        _prepare_store(url, opts.binds)
        sims: list[_Process] = []
        if opts.simulators == "out":
            sims = _start_carrier_sims(workdir, opts)
            for sim in sims:
                cleanup.callback(sim.stop)
            ports = [sim.address[1] for sim in sims]
        else:
            ports = [_free_port() for _ in range(opts.carriers)]
        configs = [_e2e_config(opts, url, ports, node=i) for i in range(count)]
        nodes = _start_nodes(cleanup, workdir, configs)
        _wait_for_carriers(nodes, opts)
        yield url, nodes, sims


def phase_fields(phase) -> dict:
    """What an end-to-end phase counted and how long its answers took."""
    return {
        "receipt_p50_ms": _round(_percentile_ms(phase.receipt_latencies, 0.50)),
        "receipt_p99_ms": _round(_percentile_ms(phase.receipt_latencies, 0.99)),
        "resp_p50_ms": _round(_percentile_ms(phase.resp_latencies, 0.50)),
        "resp_p99_ms": _round(_percentile_ms(phase.resp_latencies, 0.99)),
        "submitted": phase.submitted,
        "accepted": phase.accepted,
        "refused": {_status_name(s): n for s, n in sorted(phase.refused.items(), key=str)},
        "receipted": phase.receipted,
        "undelivered": phase.undelivered,
        "duplicates": phase.duplicates,
        "unknown_receipts": phase.unknown,
        "missing": phase.missing,
    }


def _run_e2e(opts: Options, warmup: int) -> dict:
    check_carriers(opts)
    result: dict = {
        "mode": "e2e",
        "nodes": opts.nodes,
        "binds": opts.binds,
        "window": opts.window,
        "pending": opts.pending,
        "messages": opts.messages,
        "warmup": warmup,
        **carrier_fields(opts),
        "mixed_ids": opts.mixed_ids,
        "python": ".".join(map(str, sys.version_info[:3])),
        "store": store_kind(opts.store_url or "sqlite"),
    }
    with e2e_switch(opts, opts.nodes) as (url, nodes, sims):
        gen = E2EGenerator(
            *nodes[0].address, opts.binds, opts.window, opts.timeout,
            e2e_numbers(opts.carriers), opts.pending,
            others=tuple(node.address for node in nodes[1:]),
        )  # fmt: skip
        try:
            gen.bind(SYSTEM_ID, PASSWORD)
            if warmup:
                first = gen.run(warmup)
                if first.missing or first.stalled:
                    raise BenchError(
                        f"warm-up: {first.missing} of {warmup} messages without a receipt "
                        f"after {opts.timeout:.0f} s without progress"
                    )
            pids = [p.pid for p in (*nodes, *sims)]
            cpu0, host0, wall0 = [_cpu_seconds(p) for p in pids], _host_busy(), time.monotonic()
            phase = gen.run(opts.messages)
            cpu, host1, wall1 = _cpu_since(cpu0, pids), _host_busy(), time.monotonic()
        except BenchError as e:
            raise BenchError(f"{e}{_logs(nodes)}") from None
        finally:
            gen.close()
        rss = [peak_rss_mib(node.pid) for node in nodes]
        sims_rss = [peak_rss_mib(sim.pid) for sim in sims]
        switch_cpu = _sum(cpu[: len(nodes)])
        wall = wall1 - wall0  # CPU shares are over the whole measured run, drain included
        ours = sum(c for c in cpu if c) + phase.client_cpu
        others = None if host0 is None or host1 is None else max(0.0, host1 - host0 - ours)
        result.update(
            receipted_per_s=round(phase.rate),
            **phase_fields(phase),
            complete=not phase.missing and not phase.stalled,
            elapsed_s=round(phase.elapsed, 3),
            peak_rss_mib=_round(_sum(rss)),  # the nodes' together
            carriers_peak_rss_mib=sims_rss or None,
            # CPU in % of one core; the switch's also per receipted message, which the other
            # load on a shared machine changes less than the rate.
            **_node_fields(rss, cpu[: len(nodes)], wall),
            switch_cpu_ms_per_msg=_per_message(switch_cpu, phase.receipted, 1000, 3),
            carriers_cpu_pct=_pct(sum(c for c in cpu[len(nodes) :] if c), wall) if sims else None,
            client_cpu_pct=_pct(phase.client_cpu, wall),
            others_cpu_pct=_pct(others, wall),  # other processes on the machine meanwhile
        )
        if phase.stalled:
            result["stalled_after_s"] = opts.timeout
        return result


def _cpu_since(before: list, pids: list[int]) -> list:
    """The CPU seconds each process spent since `before` (None: unknown)."""
    after = [_cpu_seconds(pid) for pid in pids]
    return [None if a is None or b is None else b - a for a, b in zip(before, after, strict=True)]


def _host_busy() -> float | None:
    """CPU seconds the whole machine has been busy (all cores; Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _pct(seconds: float | None, elapsed: float) -> float | None:
    if seconds is None or elapsed <= 0:
        return None
    return round(100 * seconds / elapsed, 1)
