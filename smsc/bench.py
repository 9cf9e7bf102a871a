"""`smsc bench`: how many submit_sm/s the switch commits and acknowledges, against the ceiling
of the protocol layer measured in the same run.

The load generator is this process: N binds (transceiver), each keeping W submit_sm
outstanding, on plain non-blocking sockets driven by `selectors`, so that the client is not
what is measured (~7 µs of client CPU a message here; an asyncio Protocol client measured
~8-9 µs; either stays under a third of a core at the echo server's rate). It uses the codec
once, to encode one submit_sm template; each send copies the template and patches the
sequence number and the destination (fictional numbers 33600000001…, cycling) with
`struct.pack_into`. Responses are parsed minimally: the header, and that a status-0
submit_sm_resp carries a non-empty message_id. A message's latency is from the send that
carried it to the read that brought its response back.

Both servers run as subprocesses so that the peak RSS reported is theirs alone:
- the switch (`smsc serve` on a temporary config: a SQLite file in a temporary directory,
  port 0, a `bench` account), unless `--target` points at one already running;
- the echo server (`python -m smsc.bench_echo`): the same reactor and codec, no session state
  machine, no validation, no store. Its rate is the protocol ceiling; `ratio` is the switch's
  rate over it.

Each side is warmed up (`warmup` messages, not counted) before the measured run.
"""

import contextlib
import math
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

from .protocol.constants import Command, Status
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


@dataclass
class Options:
    mode: str = "submit"
    binds: int = 8
    window: int = 10
    messages: int = 100_000
    warmup: int | None = None  # None: a tenth of messages, at most 5000
    target: str | None = None  # HOST:PORT of a running switch
    system_id: str = SYSTEM_ID
    password: str = PASSWORD
    pid: int | None = None  # the target's, for its peak RSS
    store_url: str | None = None  # None: a SQLite file in a temporary directory
    ceiling: bool = True  # also measure the echo server
    timeout: float = 60.0  # seconds without any response before giving up


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


def _template() -> tuple[bytes, int]:
    """One encoded submit_sm, and the offset of its destination digits."""
    first = str(FIRST_NUMBER)
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
            "short_message": b"smsc bench: a fictional message of moderate length",
        },
    )
    raw = encode(pdu)
    return raw, raw.index(first.encode() + b"\0")


class _Bind:
    """One client connection and what it has outstanding (sequence → send time)."""

    __slots__ = ("sock", "sequence", "sent", "rest", "out", "writing")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sequence = 0
        self.sent: dict[int, int] = {}
        self.rest = b""
        self.out = b""  # what a full socket buffer did not take yet
        self.writing = False


class LoadGenerator:
    def __init__(self, host: str, port: int, binds: int, window: int, timeout: float = 60.0):
        self.address = (host, port)
        self.window = window
        self.timeout = timeout
        self._nbinds = binds
        self._binds: list[_Bind] = []
        self._selector = selectors.DefaultSelector()
        self._template, self._dest_at = _template()
        self._numbers = [str(FIRST_NUMBER + i).encode() for i in range(NUMBERS)]
        self._next_number = 0

    # -- bind and unbind ---------------------------------------------------------------

    def bind(self, system_id: str, password: str) -> None:
        for _ in range(self._nbinds):
            sock = socket.create_connection(self.address, timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._binds.append(_Bind(sock))  # closed by close() even if the bind fails
            params = {"system_id": system_id, "password": password, "interface_version": 0x34}
            sock.sendall(encode(Pdu(Command.bind_transceiver, 1, 0, params)))
            resp = decode(_read_pdu(sock))
            if not isinstance(resp, Pdu) or resp.command is not Command.bind_transceiver_resp:
                raise BenchError(f"bind to {self.address}: unexpected answer {resp!r}")
            if resp.status:
                raise BenchError(f"bind to {self.address} refused: {_status_name(resp.status)}")
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

    def run(self, messages: int) -> Phase:
        """Submit `messages` across the binds, each keeping at most `window` outstanding; return
        once every one of them is answered."""
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
        pack, dest_at = _SEQ.pack_into, self._dest_at
        for i in range(n):
            at = i * size
            pack(chunk, at + 12, seq + i)
            chunk[at + dest_at : at + dest_at + 11] = numbers[(k + i) % count]
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
            raise BenchError(f"connection to {self.address} failed: {e}") from None
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
            raise BenchError(f"connection to {self.address} failed: {e}") from None
        if not data:
            raise BenchError(f"{self.address} closed the connection")
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
                raise BenchError(f"{self.address} sent a PDU of command_length {length}")
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
                raise BenchError(f"{self.address} unbound the session")
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

    def __init__(self, name: str, argv: list[str], log: Path, timeout: float = 60.0):
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while True:
            match = _LISTENING.search(log.read_bytes())
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
    """VmHWM of a process (Linux), in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
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


def _count_rows(url: str) -> int:
    from sqlalchemy import text

    from .store import db

    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM messages")).scalar_one()
    finally:
        engine.dispose()


def _start_switch(workdir: Path, url: str, window: int) -> _Process:
    config = workdir / "bench.toml"
    config.write_text(
        "[smpp]\n"
        'host = "127.0.0.1"\n'
        "port = 0\n"
        f"window = {max(window, 50)}\n"
        "\n[store]\n"
        f"url = {_toml_string(url)}\n"
    )
    argv = [sys.executable, "-c", "from smsc.cli import main; main()", "--config", str(config)]
    return _Process("smsc serve", argv + ["serve"], workdir / "serve.log")


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


def _load(opts: Options, host: str, port: int, system_id: str, password: str, warmup: int):
    gen = LoadGenerator(host, port, opts.binds, opts.window, opts.timeout)
    try:
        gen.bind(system_id, password)
        if warmup:
            gen.run(warmup)
        return gen.run(opts.messages)
    finally:
        gen.close()


def run(opts: Options) -> dict:
    """Run the benchmark; the one JSON-able dict it prints."""
    if opts.mode != "submit":
        raise BenchError(f"unknown mode {opts.mode!r}")
    if opts.binds < 1 or opts.window < 1 or opts.messages < 1:
        raise BenchError("--binds, --window and --messages must be at least 1")
    warmup = min(opts.messages // 10, 5000) if opts.warmup is None else opts.warmup
    target = None
    if opts.target is not None:
        host, _, port_text = opts.target.rpartition(":")
        if not host or not port_text.isdigit():
            raise BenchError(f"--target {opts.target!r} is not HOST:PORT")
        target = (host, int(port_text))
    workdir = Path(tempfile.mkdtemp(prefix="smsc-bench-"))
    url = opts.store_url or f"sqlite:///{workdir / 'bench.db'}"
    switch = echo = None
    result: dict = {
        "mode": opts.mode,
        "binds": opts.binds,
        "window": opts.window,
        "messages": opts.messages,
        "warmup": warmup,
        "python": ".".join(map(str, sys.version_info[:3])),
        "store": store_kind(url if opts.target is None else opts.store_url),
    }
    try:
        # The ceiling first: the switch's store then starts the measured run as it would.
        if opts.ceiling:
            echo = _start_echo(workdir)
            ceiling = _load(opts, *echo.address, "echo", "echo", warmup)
            ceiling_rss = peak_rss_mib(echo.pid)
            echo.stop()
        if opts.target is None:
            _prepare_store(url, opts.binds)
            switch = _start_switch(workdir, url, opts.window)
            host, port = switch.address
            pid: int | None = switch.pid
            system_id, password = SYSTEM_ID, PASSWORD
        else:
            host, port = target
            pid, system_id, password = opts.pid, opts.system_id, opts.password
        try:
            phase = _load(opts, host, port, system_id, password, warmup)
        except BenchError as e:
            if switch is not None:
                raise BenchError(f"{e}\n-- smsc serve log --\n{switch.tail()}") from None
            raise
        rss = peak_rss_mib(pid) if pid else None
        if switch is not None:
            switch.stop()
            if opts.store_url is None:
                result["stored"] = _count_rows(url)
        result.update(
            accepted=phase.accepted,
            refused={_status_name(s): n for s, n in sorted(phase.refused.items(), key=str)},
            accepted_per_s=round(phase.rate),
            p50_ms=_round(phase.percentile_ms(0.50)),
            p99_ms=_round(phase.percentile_ms(0.99)),
            peak_rss_mib=rss,
            elapsed_s=round(phase.elapsed, 3),
            client_cpu_pct=round(100 * phase.client_cpu / phase.elapsed, 1),
        )
        if opts.ceiling:
            result.update(
                echo_per_s=round(ceiling.rate),
                echo_p50_ms=_round(ceiling.percentile_ms(0.50)),
                echo_p99_ms=_round(ceiling.percentile_ms(0.99)),
                echo_peak_rss_mib=ceiling_rss,
                echo_client_cpu_pct=round(100 * ceiling.client_cpu / ceiling.elapsed, 1),
                ratio=round(phase.rate / ceiling.rate, 3) if ceiling.rate else None,
            )
        return result
    finally:
        for process in (echo, switch):
            if process is not None:
                process.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
