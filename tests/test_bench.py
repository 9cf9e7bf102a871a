"""`smsc bench`: a small run of the real thing, checked for shape and sanity (not for speed).

The self-contained run starts `smsc serve` (temporary SQLite store, port 0) and the codec echo
server as subprocesses and drives both over loopback.
"""

import json
import subprocess
import sys
from collections import Counter

import pytest
from click.testing import CliRunner

from smsc import bench
from smsc.cli import main
from smsc.protocol.constants import Command
from smsc.protocol.pdu import decode

pytestmark = pytest.mark.e2e


def _bench(*args: str) -> dict:
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return json.loads(lines[0])


def test_self_contained_run_reports_sane_figures():
    out = _bench("--messages", "2000", "--binds", "2", "--window", "5")

    assert out["mode"] == "submit"
    assert (out["binds"], out["window"], out["messages"]) == (2, 5, 2000)
    assert out["warmup"] == 200
    assert out["python"] == ".".join(map(str, sys.version_info[:3]))
    assert out["store"] == "sqlite"
    # Every message accepted, answered and committed (the warm-up's too).
    assert out["accepted"] == 2000
    assert out["refused"] == {}
    assert out["stored"] == 2000 + 200
    assert out["accepted_per_s"] > 0
    assert 0 < out["p50_ms"] <= out["p99_ms"]
    assert out["peak_rss_mib"] > 10
    # The ceiling, measured in the same run.
    assert out["echo_per_s"] > 0
    assert 0 < out["echo_p50_ms"] <= out["echo_p99_ms"]
    assert out["echo_peak_rss_mib"] > 10
    assert 0 < out["ratio"] <= 5
    assert out["ratio"] == pytest.approx(out["accepted_per_s"] / out["echo_per_s"], rel=0.01)


def test_target_mode_benches_a_running_server():
    # The echo server stands in for a switch that is already running.
    proc = subprocess.Popen(
        [sys.executable, "-m", "smsc.bench_echo", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "echo listening on" in line
        address = line.split()[-1]
        out = _bench(
            "--target", address, "--pid", str(proc.pid), "--no-ceiling",
            "--messages", "500", "--binds", "3", "--window", "4",
        )  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)
    assert out["accepted"] == 500
    assert out["peak_rss_mib"] > 10
    assert out["store"] == "unknown"
    assert "stored" not in out and "ratio" not in out


def test_bad_target_is_a_one_line_error():
    result = CliRunner().invoke(main, ["bench", "--target", "nowhere", "--no-ceiling"])
    assert result.exit_code == 1
    assert "is not HOST:PORT" in result.output


def test_template_is_a_submit_sm_with_a_patchable_destination():
    raw, at = bench._template()
    pdu = decode(raw)
    assert pdu.command is Command.submit_sm
    assert pdu.params["destination_addr"] == str(bench.FIRST_NUMBER)
    assert raw[at : at + 11] == str(bench.FIRST_NUMBER).encode()


def test_percentiles_are_nearest_rank():
    phase = bench.Phase(4, 4, Counter(), [4_000_000, 1_000_000, 3_000_000, 2_000_000], 1, 0)
    assert phase.percentile_ms(0.5) == 2.0
    assert phase.percentile_ms(0.99) == 4.0
    assert phase.rate == 4.0
