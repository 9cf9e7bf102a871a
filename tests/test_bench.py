"""`smsc bench`: a small run of the real thing, checked for shape and sanity (not for speed).

The self-contained run starts `smsc serve` (temporary SQLite store, port 0) and the codec echo
server as subprocesses and drives both over loopback.
"""

import json
import subprocess
import sys
import tomllib
from collections import Counter
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from smsc import bench
from smsc.cli import main
from smsc.config import load as load_config
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
    # CPU a message on each side: the echo server's is the budget the ratio is measured against.
    assert 0 < out["echo_cpu_us_per_msg"] < out["switch_cpu_us_per_msg"]
    assert out["echo_cpu_pct"] > 0


def test_accept_mode_commits_every_message_through_the_accept_path(tmp_path):
    # In a process of its own: the run needs a reactor, and a reactor runs once a process.
    result = subprocess.run(
        [sys.executable, "-m", "smsc", "bench", "--mode", "accept", "--messages", "3000",
         "--binds", "2", "--window", "5"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["mode"], out["binds"], out["window"]) == ("accept", 2, 5)
    assert out["stored"] == 3000 + 300 and out["refused"] == 0
    assert out["accepted_per_s"] > 0 and out["cpu_pct"] > 0
    assert out["cpu_us_per_msg"] == pytest.approx(
        1e4 * out["cpu_pct"] / out["accepted_per_s"], rel=0.01
    )


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


def test_submit_destinations_are_distinct_and_in_no_order():
    numbers = bench.submit_numbers()
    assert len(set(numbers)) == len(numbers) == bench.NUMBERS
    assert numbers != sorted(numbers)
    assert numbers == bench.submit_numbers()  # the same list each run


def test_percentiles_are_nearest_rank():
    phase = bench.Phase(4, 4, Counter(), [4_000_000, 1_000_000, 3_000_000, 2_000_000], 1, 0)
    assert phase.percentile_ms(0.5) == 2.0
    assert phase.percentile_ms(0.99) == 4.0
    assert phase.rate == 4.0


def _e2e(*args: str) -> dict:
    result = CliRunner().invoke(main, ["bench", "--mode", "e2e", *args])
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    out = json.loads(lines[0])
    assert result.exit_code == (0 if out["complete"] else 1), result.output
    return out


def test_e2e_run_receipts_every_accepted_message():
    out = _e2e("--messages", "300", "--binds", "2", "--window", "5", "--carriers", "2",
               "--carrier-binds", "1", "--dlr-delay", "0.05", "--pending", "100")  # fmt: skip

    assert out["mode"] == "e2e"
    assert (out["binds"], out["window"], out["messages"], out["pending"]) == (2, 5, 300, 100)
    assert (out["carriers"], out["carrier_binds"], out["dlr_delay_s"]) == (2, 1, 0.05)
    assert out["simulators"] == "in-process"
    assert out["warmup"] == 30
    # Everything submitted was accepted, and every accepted message got exactly one receipt.
    assert out["submitted"] == out["accepted"] == out["receipted"] == 300
    assert out["refused"] == {}
    assert (out["missing"], out["duplicates"], out["unknown_receipts"]) == (0, 0, 0)
    assert out["undelivered"] == 0
    assert out["complete"] is True
    assert out["receipted_per_s"] > 0
    # A receipt comes after the carrier's delay, and after the submit_sm_resp.
    assert 50 <= out["receipt_p50_ms"] <= out["receipt_p99_ms"]
    assert 0 < out["resp_p50_ms"] <= out["resp_p99_ms"]
    assert out["receipt_p50_ms"] > out["resp_p50_ms"]
    assert out["peak_rss_mib"] > 10
    assert out["switch_cpu_ms_per_msg"] > 0
    assert out["carriers_peak_rss_mib"] is None and out["carriers_cpu_pct"] is None


def test_e2e_with_carrier_sim_processes():
    out = _e2e("--messages", "100", "--binds", "1", "--carriers", "1", "--carrier-binds", "1",
               "--simulators", "out", "--dlr-delay", "0.05", "--warmup", "0")  # fmt: skip

    assert out["simulators"] == "subprocesses"
    assert out["warmup"] == 0
    assert out["accepted"] == out["receipted"] == 100
    assert out["complete"] is True
    assert len(out["carriers_peak_rss_mib"]) == 1 and out["carriers_peak_rss_mib"][0] > 10


def test_e2e_destinations_cycle_over_the_carriers():
    numbers = bench.e2e_numbers(3)
    assert {len(n) for n in numbers} == {11}
    assert [n[:4] for n in numbers[:4]] == [b"3361", b"3362", b"3363", b"3361"]
    assert len(set(numbers)) == len(numbers)
    raw, at = bench._template(1, numbers[0].decode())
    pdu = decode(raw)
    assert pdu.params["registered_delivery"] == 1
    assert raw[at : at + 11] == numbers[0]


def test_accept_refuses_a_target():
    result = CliRunner().invoke(main, ["bench", "--mode", "accept", "--target", "127.0.0.1:2775"])
    assert result.exit_code == 1
    assert "no --target" in result.output


def test_e2e_refuses_a_target():
    result = CliRunner().invoke(main, ["bench", "--mode", "e2e", "--target", "127.0.0.1:2775"])
    assert result.exit_code == 1
    assert "no --target" in result.output


def test_e2e_mixed_id_forms_receipt_every_message():
    out = _e2e("--messages", "200", "--binds", "2", "--carriers", "2", "--carrier-binds", "1",
               "--mixed-ids", "--dlr-delay", "0.05", "--warmup", "0", "--timeout", "5")  # fmt: skip

    assert out["mixed_ids"] is True
    assert out["missing"] == 0 and out["complete"] is True


def test_e2e_stall_reports_what_is_missing():
    # A carrier that takes an hour to send its receipts: the run stops after the stall limit,
    # prints its line anyway, and exits 1.
    out = _e2e("--messages", "20", "--binds", "1", "--carriers", "1", "--carrier-binds", "1",
               "--dlr-delay", "3600", "--warmup", "0", "--timeout", "2")  # fmt: skip

    assert out["complete"] is False
    assert out["accepted"] == out["missing"] == 20
    assert out["receipted"] == 0 and out["receipted_per_s"] == 0
    assert out["stalled_after_s"] == 2


def test_schedule_run_holds_the_messages_until_they_are_due():
    out = _bench("--mode", "schedule", "--messages", "2000", "--due-in", "6", "--drain", "2")

    assert out["mode"] == "schedule"
    assert (out["messages"], out["carriers"], out["due_in_s"], out["drain_s"]) == (2000, 3, 6, 2)
    assert out["accepted"] == 2000 and out["refused"] == {}
    assert out["submitted_per_s"] > 0
    # Nothing went out before the due time; then the first message soon after it.
    assert out["sent_before_due"] == 0
    assert 0 <= out["first_out_ms"] < 5000
    assert 0 < out["drained"] <= 2000 and out["drain_per_s"] > 0
    assert out["queued_left"] <= 2000 - out["drained"] and out["sending_left"] >= 0
    assert out["all_out"] is (out["drained"] == 2000)
    # The claim query, read-only from the bench, on the queue index.
    assert out["claim_query_ms"] > 0
    assert "messages_queue" in out["claim_plan"]
    for field in ("rss_start_mib", "rss_queued_mib", "rss_after_mib", "peak_rss_mib"):
        assert out[field] > 10
    assert out["peak_rss_mib"] >= out["rss_queued_mib"]


def test_schedule_refuses_due_time_before_the_submits_end():
    # 0.1 s is too short for 5000 submits: the run stops and says what to raise.
    result = CliRunner().invoke(
        main, ["bench", "--mode", "schedule", "--messages", "5000", "--due-in", "0.1"]
    )
    assert result.exit_code == 1
    assert "raise --due-in" in result.output


def test_template_carries_a_schedule():
    raw, _ = bench._template(0, str(bench.FIRST_NUMBER), "260101120000000+")
    assert decode(raw).params["schedule_delivery_time"] == "260101120000000+"


def test_e2e_config_gives_each_simulator_its_control_port():
    opts = bench.resolve(bench.Options(mode="schedule", carriers=2))
    config = tomllib.loads(bench._e2e_config(opts, "sqlite:///x.db", [2001, 2002], [3001, 3002]))
    assert [c["simulator"]["control_port"] for c in config["carriers"]] == [3001, 3002]
    plain = tomllib.loads(bench._e2e_config(opts, "sqlite:///x.db", [2001, 2002]))
    assert all("control_port" not in c["simulator"] for c in plain["carriers"])


# -- --nodes: several `smsc serve` on one PostgreSQL store ----------------------------------

PG = "postgresql+psycopg://bench@127.0.0.1/bench"  # never reached: each run stops at its check


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--nodes", "0"], "--nodes must be at least 1"),
        (["--nodes", "2"], "a SQLite store serves one node"),
        (["--nodes", "2", "--store-url", "sqlite:///x.db"], "a SQLite store serves one node"),
        (["--nodes", "2", "--store-url", PG, "--mode", "schedule"], "--mode submit or e2e"),
        (["--nodes", "2", "--target", "127.0.0.1:2775"], "no --target"),
        (["--nodes", "3", "--store-url", PG, "--binds", "2"], "--binds must be at least"),
        (
            ["--nodes", "2", "--store-url", PG, "--mode", "e2e", "--simulators", "in"],
            "--simulators out",
        ),
        (
            ["--nodes", "3", "--store-url", PG, "--mode", "e2e", "--carrier-binds", "2"],
            "--carrier-binds must be at least --nodes",
        ),
    ],
)
def test_nodes_are_checked_before_anything_starts(args, error):
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 1
    assert error in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_more_nodes_default_to_shared_simulators_and_two_carrier_binds_each():
    opts = bench.resolve(bench.Options(mode="e2e", nodes=3, store_url=PG))
    assert (opts.simulators, opts.carrier_binds) == ("out", 6)
    one = bench.resolve(bench.Options(mode="e2e"))
    assert (one.simulators, one.carrier_binds) == ("in", 2)


def test_each_node_has_its_name_and_the_shared_store_and_carriers(tmp_path):
    opts = bench.resolve(bench.Options(mode="e2e", nodes=2, store_url=PG, carriers=2))
    configs = []
    for i in range(2):
        path = tmp_path / f"bench-{i}.toml"
        path.write_text(bench._e2e_config(opts, PG, [2001, 2002], node=i))
        configs.append(load_config(path))
    assert [c.cluster.node for c in configs] == ["bench-0", "bench-1"]
    for c in configs:
        assert c.store.url == PG and c.smpp.port == 0
        assert [(k.port, k.binds, k.simulate) for k in c.carriers] == [
            (2001, 4, False),
            (2002, 4, False),
        ]
    plain = tomllib.loads("\n".join(bench._node_config(PG, 10, 1)))
    assert plain["cluster"]["node"] == "bench-1" and plain["store"]["url"] == PG


def _echo() -> tuple[subprocess.Popen, tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "smsc.bench_echo", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    host, port = proc.stdout.readline().split()[-1].rsplit(":", 1)
    return proc, (host, int(port))


def test_binds_go_round_robin_over_the_nodes():
    (one, a), (two, b) = _echo(), _echo()
    try:
        gen = bench.LoadGenerator(*a, 3, 4, 10, others=(b,))
        try:
            gen.bind("echo", "echo")
            assert [bind.address for bind in gen._binds] == [a, b, a]
            assert gen.run(300).accepted == 300
        finally:
            gen.close()
    finally:
        for proc in (one, two):
            proc.terminate()
            proc.wait(10)


def _node(tmp_path, i: int, log: str) -> SimpleNamespace:
    path = tmp_path / f"serve-{i}.log"
    path.write_text(log)
    return SimpleNamespace(
        name=f"smsc serve bench-{i}", log=path, proc=SimpleNamespace(poll=lambda: None),
        tail=path.read_text,
    )  # fmt: skip


def _bound(carrier: str, n: int, closed: int = 0) -> str:
    return (
        f"carrier {carrier} bound (x/4)\n" * n
        + f"carrier {carrier} link closed: unbound\n" * closed
    )


def test_the_run_waits_for_the_carrier_binds_to_be_shared_out(tmp_path):
    opts = bench.Options(mode="e2e", nodes=2, carriers=1, carrier_binds=4)
    # The first node took all four and gave two back; the second took them.
    shared = [
        _node(tmp_path, 0, _bound("orange", 4, closed=2)),
        _node(tmp_path, 1, _bound("orange", 2)),
    ]
    bench._wait_for_carriers(shared, opts, timeout=1)
    # The first still holds them all: not ready.
    early = [_node(tmp_path, 0, _bound("orange", 4)), _node(tmp_path, 1, "")]
    with pytest.raises(bench.BenchError, match=r"(?s)did not all bind.*bench-1 log"):
        bench._wait_for_carriers(early, opts, timeout=0.2)
