"""`smsc bench --mode schedule`: a large queue of scheduled messages, and what happens when they
fall due.

The switch (`smsc serve` on a temporary config, as in --mode e2e: `--carriers` simulated
carriers in its process, each with an HTTP control endpoint whose `GET /stats` counts the
submit_sm it took) gets `--messages` submit_sm (1,000,000 by default) that all carry the same
absolute schedule_delivery_time, `--due-in` seconds after the start, and registered_delivery 0.
Then:
- `rss_start_mib`, `rss_queued_mib`, `rss_after_mib`: the switch's RSS (VmRSS) once started,
  once everything is queued, and after the drain; `peak_rss_mib` its VmHWM at the end;
- `claim_query_ms`: the median time of the claim's query (`queue._fair_share`, SELECT only)
  run from this process against the full queue, as if at the due time; `claim_plan`: SQLite's
  query plan of its per-account select;
- `sent_before_due`: what the carriers had taken before the due time (0, or scheduling is
  broken); `first_out_ms`: from the due time to the first submit_sm a carrier counted (the
  control endpoints are polled every 20 ms around it);
- `drained`: what the carriers took within `--drain` seconds of the due time (the watch stops
  early once every accepted message is out), `drain_per_s` that over the time from the first
  out to the last look; `queued_left`: the messages still waiting in the store at the end,
  `sending_left` those claimed and not yet taken by a carrier (the dispatcher claims up to a
  second of each carrier's `--carrier-tps`: with the default, far more than the carriers take
  in a second, and they wait in the switch's memory).
"""

import json
import math
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .bench import (
    PASSWORD,
    SYSTEM_ID,
    BenchError,
    LoadGenerator,
    Options,
    Overdue,
    _count_rows,
    _free_port,
    _prepare_store,
    _start_e2e_switch,
    _status_name,
    carrier_fields,
    check_carriers,
    e2e_numbers,
    peak_rss_mib,
    rss_mib,
    store_kind,
)
from .config import QueueConfig
from .protocol.smpptime import format_absolute

# The default --due-in assumes this many submit_sm/s: the switch does ~12,000 on an empty
# store, and 6,200-7,300 on average over a million here (the store grows); less when the
# machine is busy with something else.
SUBMIT_FLOOR = 4000
DUE_MARGIN = 15.0  # seconds added to that
POLL = 0.02  # seconds between looks at the carriers' counters around the due time
DRAIN_POLL = 0.25  # …and once messages flow
CLAIM_RUNS = 10


def run_schedule(opts: Options) -> dict:
    check_carriers(opts)
    if opts.simulators != "in":
        raise BenchError("--mode schedule counts on in-process simulators: no --simulators out")
    if opts.drain <= 0 or (opts.due_in is not None and opts.due_in <= 0):
        raise BenchError("--due-in and --drain must be more than 0 seconds")
    due_in = opts.due_in if opts.due_in is not None else opts.messages / SUBMIT_FLOOR + DUE_MARGIN
    workdir = Path(tempfile.mkdtemp(prefix="smsc-bench-"))
    url = opts.store_url or f"sqlite:///{workdir / 'bench.db'}"
    switch = None
    result: dict = {
        "mode": "schedule",
        "binds": opts.binds,
        "window": opts.window,
        "messages": opts.messages,
        **carrier_fields(opts),
        "due_in_s": round(due_in, 1),
        "drain_s": opts.drain,
        "python": ".".join(map(str, sys.version_info[:3])),
        "store": store_kind(url),
    }
    try:
        _prepare_store(url, opts.binds)
        ports = [_free_port() for _ in range(opts.carriers)]
        controls = [_free_port() for _ in range(opts.carriers)]
        switch = _start_e2e_switch(workdir, opts, url, ports, controls)
        try:
            result.update(_measure(opts, switch, url, controls, due_in))
        except BenchError as e:
            raise BenchError(f"{e}\n-- smsc serve log --\n{switch.tail()}") from None
        return result
    finally:
        if switch is not None:
            switch.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _measure(opts: Options, switch, url: str, controls: list[int], due_in: float) -> dict:
    out: dict = {"rss_start_mib": rss_mib(switch.pid)}
    # A whole tenth of a second: the precision of an SMPP time.
    due = math.ceil((time.time() + due_in) * 10) / 10
    gen = LoadGenerator(
        *switch.address, opts.binds, opts.window, opts.timeout,
        numbers=e2e_numbers(opts.carriers), schedule=format_absolute(due),
    )  # fmt: skip
    try:
        gen.bind(SYSTEM_ID, PASSWORD)
        phase = gen.run(opts.messages, deadline=due)
    except Overdue as e:
        raise BenchError(
            f"the submits did not end before the due time ({e}): raise --due-in"
        ) from None
    finally:
        gen.close()
    out.update(
        accepted=phase.accepted,
        refused={_status_name(s): n for s, n in sorted(phase.refused.items(), key=str)},
        submitted_per_s=round(phase.rate),
        submit_s=round(phase.elapsed, 3),
        rss_queued_mib=rss_mib(switch.pid),
    )
    out["claim_query_ms"], out["claim_plan"] = _time_claim(url, due)
    if time.time() >= due:
        raise BenchError("the claim query's timing ended after the due time: raise --due-in")
    out.update(_watch(controls, due, due + opts.drain, phase.accepted))
    out.update(
        rss_after_mib=rss_mib(switch.pid),
        peak_rss_mib=peak_rss_mib(switch.pid),
        queued_left=_count_rows(url, "ACCEPTED"),
        sending_left=_count_rows(url, "SENDING"),
    )
    return out


def _time_claim(url: str, due: float) -> tuple[float, str | None]:
    """The median time of the claim's query at the due time, read-only (it only selects), and
    SQLite's plan of its per-account select (None on other databases)."""
    from .store import db, queue

    limit = QueueConfig().claim_batch
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            times = []
            for _ in range(CLAIM_RUNS):
                start = time.perf_counter()
                ids = queue._fair_share(conn, due + 1, limit)
                times.append(time.perf_counter() - start)
                conn.rollback()  # a fresh snapshot each time; none kept while the switch runs
            if not ids:
                raise BenchError("the claim query found no message due")
            if engine.dialect.name != "sqlite":
                return round(statistics.median(times) * 1000, 2), None
            [account] = queue._queued_accounts(conn)
            asked = {"account": account, "now": due + 1, "take": limit, "skip": 0}
            plan = queue._DUE.plan(conn, asked)
            conn.rollback()
    finally:
        engine.dispose()
    return round(statistics.median(times) * 1000, 2), plan


def _watch(controls: list[int], due: float, end: float, accepted: int) -> dict:
    """Watch the carriers' counters from now until `end` (or until every accepted message is
    out): what they took before `due`, how long after it the first message came, and how many
    they took by the end."""
    before, first, taken = 0, None, 0
    while True:
        taken = _received(controls)
        now = time.time()
        if now < due:
            before = taken
        elif first is None and taken > before:
            first = now
        if now >= end or taken - before >= accepted:
            break
        if first is not None:
            pause = DRAIN_POLL
        elif now < due - 1:
            pause = min(0.5, due - 1 - now)
        else:
            pause = POLL
        time.sleep(max(0.0, min(pause, end - now)))
    drained = taken - before
    return {
        "sent_before_due": before,
        "first_out_ms": None if first is None else round((first - due) * 1000, 1),
        "drained": drained,
        "drain_per_s": round(drained / (now - first)) if first is not None and now > first else 0,
        "all_out": drained >= accepted,
    }


def _received(controls: list[int]) -> int:
    """The submit_sm the simulated carriers took so far, in all (their GET /stats)."""
    total = 0
    for port in controls:
        address = f"http://127.0.0.1:{port}/stats"
        try:
            with urllib.request.urlopen(address, timeout=10) as response:
                total += json.load(response)["received"]
        except (OSError, ValueError, KeyError) as e:
            raise BenchError(f"reading {address} failed: {e}") from None
    return total
