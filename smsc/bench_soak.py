"""`smsc bench --mode soak`: a steady load for `--duration` seconds, and the switch's memory
over it: is its RSS flat once warm?

The set-up is --mode e2e's: a temporary switch (`smsc serve` on a SQLite file, or a schema of
its own with `--store-url` on PostgreSQL), `--carriers` simulated carriers sending receipts
after `--dlr-delay`, and transceiver binds that submit with registered_delivery = 1 and
answer every deliver_sm. But the load is paced: `--rate` submit_sm/s (300 by default, well
under what the switch does end to end here), spread over the binds, each keeping at most
`window` unanswered and all of them at most `--pending` not yet receipted. The simulators run
as `smsc carrier-sim` processes by default (`--simulators out`): in the switch's process they
would keep a record of every submit they take, and the switch's RSS would count it.

Every few seconds (5, or a twentieth of the run when that is shorter) the switch's RSS is read
(VmRSS in /proc/PID/status). The warm-up is the first fifth of the run: the store's page
caches, the allocator's arenas and the first receipts' tables fill then. One JSON line:
`rss_start_mib` (the first sample), `rss_warm_mib` (the first sample after the warm-up),
`rss_end_mib` (the last), `rss_max_mib`, `growth_pct` (warm-up to end), `slope_mib_per_h`
(least squares over the samples after the warm-up), `flat` (growth_pct ≤ `--max-growth`, 10),
every sample (`rss_samples_mib`, one each `sample_s`), the messages submitted, accepted,
refused, receipted and missing, the latencies, and the switch's CPU. The run exits 1 after its
line when the RSS grew more than that, or when an accepted message got no receipt.
"""

import dataclasses
import selectors
import sys
import time

from .bench import (
    PASSWORD,
    SYSTEM_ID,
    BenchError,
    E2EGenerator,
    E2EPhase,
    Options,
    _count_rows,
    _cpu_seconds,
    _logs,
    _pct,
    carrier_fields,
    check_carriers,
    e2e_numbers,
    e2e_switch,
    peak_rss_mib,
    phase_fields,
    rss_mib,
    store_kind,
)

WARMUP_SHARE = 0.2  # of the run, before the RSS it is measured from
SAMPLE_EVERY = 5.0  # seconds between RSS samples, at most
SAMPLES_MIN = 20  # samples in a short run, at least
TICK = 0.01  # seconds between looks at the pace


class SoakGenerator(E2EGenerator):
    """The e2e load generator, paced at a fixed rate for a fixed time."""

    def soak(self, duration: float, rate: int, every: float, sample) -> tuple[E2EPhase, list]:
        """Submit `rate` messages/s for `duration` seconds, calling `sample()` every `every`
        seconds (and at the end); then wait for the last receipts (until `timeout` seconds
        pass without any). Returns the phase and the samples as (seconds, value)."""
        self._new_phase()
        binds, waiting = self._binds, self._waiting
        window, cap = self.window, self.pending
        select = self._selector.select
        samples: list[tuple[float, float | None]] = []
        submitted = turn = 0
        cpu0 = time.process_time()
        start_ns = time.perf_counter_ns()
        t0 = time.monotonic()
        next_sample, end = t0, t0 + duration
        while True:
            now = time.monotonic()
            if now >= next_sample or now >= end:
                samples.append((round(now - t0, 2), sample()))
                next_sample += every
            if now >= end:
                break
            due = int(rate * (now - t0)) + 1 - submitted
            room = cap - self._unanswered - len(waiting) if cap else due
            n = min(due, room)
            for _ in range(len(binds)):
                if n <= 0:
                    break
                b = binds[turn]
                turn = (turn + 1) % len(binds)
                k = min(window - len(b.sent), n, 1 + n // len(binds))
                if k > 0:
                    self._submit(b, k)
                    self._unanswered += k
                    submitted += k
                    n -= k
            self._pump(select, max(0.0, min(TICK, next_sample - now, end - now)))
        load_s = time.monotonic() - t0
        # The last receipts.
        progress, seen = time.monotonic(), (len(self._resp_latencies), self._receipted_now)
        stalled = False
        while self._unanswered or waiting:
            self._pump(select, 0.5)
            now = (len(self._resp_latencies), self._receipted_now)
            if now != seen:
                progress, seen = time.monotonic(), now
            elif time.monotonic() - progress >= self.timeout:
                stalled = True
                break
        phase = self._phase(submitted, submitted, waiting, load_s, cpu0, stalled)
        self.drain_s = (time.perf_counter_ns() - start_ns) / 1e9 - load_s
        return phase, samples

    def _pump(self, select, timeout: float) -> None:
        for key, mask in select(timeout):
            b = key.data
            if mask & selectors.EVENT_WRITE:
                self._write_more(b)
            if mask & selectors.EVENT_READ:
                self._read_e2e(b)


def resolve_soak(opts: Options) -> Options:
    """--mode soak's options, defaults filled in and checked."""
    if opts.simulators is None:
        opts = dataclasses.replace(opts, simulators="out")
    if opts.carrier_binds is None:
        opts = dataclasses.replace(opts, carrier_binds=2)
    if opts.nodes != 1:
        raise BenchError("--mode soak runs one node: no --nodes")
    if opts.duration <= 0 or opts.rate < 1:
        raise BenchError("--duration must be more than 0 seconds and --rate at least 1")
    if opts.binds < 1 or opts.window < 1:
        raise BenchError("--binds and --window must be at least 1")
    check_carriers(opts)
    return opts


def sample_every(duration: float) -> float:
    return min(SAMPLE_EVERY, max(0.05, duration / SAMPLES_MIN))


def summary(samples: list[tuple[float, float | None]], duration: float, max_growth: float):
    """The RSS samples' figures: at the start, after the warm-up, at the end, the most, the
    growth from the warm-up to the end and the slope after the warm-up."""
    known = [(t, v) for t, v in samples if v is not None]
    if not known:
        raise BenchError("the switch's RSS could not be read (/proc/PID/status)")
    warm_at = WARMUP_SHARE * duration
    after = [(t, v) for t, v in known if t >= warm_at] or known[-1:]
    warm, end = after[0][1], known[-1][1]
    growth = 100 * (end - warm) / warm
    return {
        "warmup_s": round(warm_at, 1),
        "samples": len(known),
        "sample_s": sample_every(duration),
        "rss_start_mib": known[0][1],
        "rss_warm_mib": warm,
        "rss_end_mib": end,
        "rss_max_mib": max(v for _, v in known),
        "rss_max_after_warmup_mib": max(v for _, v in after),
        "growth_pct": round(growth, 1),
        "slope_mib_per_h": _slope(after),
        "max_growth_pct": max_growth,
        "flat": growth <= max_growth,
        "rss_samples_mib": [v for _, v in known],
    }


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least squares, in MiB an hour."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if not var:
        return None
    return round(3600 * sum((t - mt) * (v - mv) for t, v in points) / var, 2)


def run_soak(opts: Options) -> dict:
    opts = resolve_soak(opts)
    every = sample_every(opts.duration)
    result: dict = {
        "mode": "soak",
        "duration_s": opts.duration,
        "rate": opts.rate,
        "binds": opts.binds,
        "window": opts.window,
        "pending": opts.pending,
        **carrier_fields(opts),
        "python": ".".join(map(str, sys.version_info[:3])),
        "store": store_kind(opts.store_url or "sqlite"),
    }
    with e2e_switch(opts, 1) as (url, nodes, _):
        switch = nodes[0]
        gen = SoakGenerator(
            *switch.address, opts.binds, opts.window, opts.timeout,
            e2e_numbers(opts.carriers), opts.pending,
        )  # fmt: skip
        try:
            gen.bind(SYSTEM_ID, PASSWORD)
            cpu0 = _cpu_seconds(switch.pid)
            phase, samples = gen.soak(opts.duration, opts.rate, every, lambda: rss_mib(switch.pid))
            cpu1 = _cpu_seconds(switch.pid)
        except BenchError as e:
            raise BenchError(f"{e}{_logs(nodes)}") from None
        finally:
            gen.close()
        peak = peak_rss_mib(switch.pid)
        switch.stop()
        result.update(summary(samples, opts.duration, opts.max_growth))
        cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        result.update(
            rss_peak_mib=peak,
            **phase_fields(phase),
            submitted_per_s=round(phase.submitted / phase.elapsed, 1),
            errors=sum(phase.refused.values()) + phase.missing + phase.unknown,
            complete=not phase.missing and not phase.stalled and not phase.refused,
            switch_cpu_pct=_pct(cpu, phase.elapsed + gen.drain_s),
            client_cpu_pct=_pct(phase.client_cpu, phase.elapsed + gen.drain_s),
            stored=_count_rows(url),
        )
        if phase.stalled:
            result["stalled_after_s"] = opts.timeout
        return result
