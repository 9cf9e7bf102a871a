"""`smsc bench --mode accept`: the accept path alone, in this process, with no socket, no codec
and no session: what the switch spends on a message beyond what the echo server does.

The switch's own Acceptor and Store (a temporary SQLite file, or a schema of its own on a
PostgreSQL `--store-url`, as in --mode submit) on a Twisted reactor: each submission is the
bench's decoded submit_sm template to one of the same shuffled fictional numbers, validated,
hashed for the opt-out list, charged and committed by the group-commit writer, with `--binds`
× `--window` of them waiting for their commit at any time (as that many outstanding
submit_sm would). One JSON line: `accepted_per_s`, `cpu_pct` (this process, in % of one
core: the reactor, the writer and SQLite) and `cpu_us_per_msg`, and `stored`.
"""

import contextlib
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .bench import (
    SYSTEM_ID,
    BenchError,
    Options,
    _count_rows,
    _per_message,
    _prepare_store,
    _store,
    _template,
    store_kind,
    submit_numbers,
)
from .protocol.constants import Status
from .protocol.pdu import decode


def run_accept(opts: Options, warmup: int) -> dict:
    if opts.target is not None:
        raise BenchError("--mode accept runs the accept path in this process: no --target")
    from twisted.internet import reactor

    from .accept import Acceptor
    from .store import accounts, optouts
    from .store.db import writing
    from .store.service import Store

    submit = decode(_template()[0])
    numbers = itertools.cycle(n.decode() for n in submit_numbers())
    result: dict = {
        "mode": "accept",
        "binds": opts.binds,
        "window": opts.window,
        "messages": opts.messages,
        "warmup": warmup,
        "python": ".".join(map(str, sys.version_info[:3])),
        "store": store_kind(opts.store_url or "sqlite"),
    }
    with contextlib.ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="smsc-bench-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        url, _ = cleanup.enter_context(_store(opts, workdir))
        _prepare_store(url, opts.binds)
        store = Store(url, reactor)
        with writing(store.engine) as conn:
            account = accounts.get(conn, SYSTEM_ID)
            key = optouts.hash_key(conn, None)
        acceptor = Acceptor(store, reactor, key)
        total = warmup + opts.messages
        counts = {"sent": 0, "answered": 0, "refused": 0}
        marks: dict = {}

        def send() -> None:
            counts["sent"] += 1
            acceptor.submit(account, submit.params, submit.tlvs, [(1, 1, next(numbers))], answered)

        def answered(status, ids, refused) -> None:
            counts["answered"] += 1
            counts["refused"] += status != Status.ROK
            if counts["answered"] == warmup:
                marks["start"] = time.perf_counter(), time.process_time()
            if counts["sent"] < total:
                send()
            elif counts["answered"] == total:
                marks["end"] = time.perf_counter(), time.process_time()
                store.stop().addBoth(lambda _: reactor.stop())

        def start() -> None:
            store.start()
            if not warmup:
                marks["start"] = time.perf_counter(), time.process_time()
            for _ in range(min(opts.binds * opts.window, total)):
                send()

        reactor.callWhenRunning(start)
        reactor.run(installSignalHandlers=False)
        if "end" not in marks:
            raise BenchError("the accept run did not finish (see the log above)")
        (t0, c0), (t1, c1) = marks["start"], marks["end"]
        elapsed, cpu = t1 - t0, c1 - c0
        result.update(
            stored=_count_rows(url),
            refused=counts["refused"],
            accepted_per_s=round(opts.messages / elapsed),
            elapsed_s=round(elapsed, 3),
            cpu_pct=round(100 * cpu / elapsed, 1),
            cpu_us_per_msg=_per_message(cpu, opts.messages),
        )
    return result
