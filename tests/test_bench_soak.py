"""`smsc bench --mode soak`: a short run of the real thing (a few seconds of paced load on a
switch with a carrier-sim process), checked for shape; and the RSS summary on made-up samples."""

import json

import pytest
from click.testing import CliRunner

from smsc import bench, bench_soak
from smsc.cli import main

pytestmark = pytest.mark.e2e


def test_soak_run_paces_the_load_and_samples_the_rss():
    # --max-growth -1: even a flat RSS fails the check, so that the exit status is seen too.
    result = CliRunner().invoke(
        main,
        ["bench", "--mode", "soak", "--duration", "3", "--rate", "100", "--binds", "2",
         "--carriers", "1", "--carrier-binds", "1", "--dlr-delay", "0.05", "--max-growth", "-1"],
    )  # fmt: skip
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    out = json.loads(lines[0])
    assert result.exit_code == 1, result.output  # after its line: the RSS check failed

    assert out["mode"] == "soak"
    assert (out["duration_s"], out["rate"], out["binds"], out["carriers"]) == (3, 100, 2, 1)
    assert out["simulators"] == "subprocesses"  # the switch's RSS is its own
    # Paced: about rate × duration, not as many as the switch can take.
    assert 250 <= out["submitted"] <= 301
    assert 80 <= out["submitted_per_s"] <= 101
    assert out["submitted"] == out["accepted"] == out["receipted"] == out["stored"]
    assert (out["missing"], out["errors"], out["refused"]) == (0, 0, {})
    assert out["complete"] is True
    # Samples every 3/20 s, from the start to the end of the load.
    assert out["sample_s"] == 0.15
    assert out["samples"] == len(out["rss_samples_mib"]) >= 15
    assert all(v > 10 for v in out["rss_samples_mib"])
    assert out["rss_start_mib"] == out["rss_samples_mib"][0]
    assert out["rss_end_mib"] == out["rss_samples_mib"][-1]
    assert out["rss_max_mib"] == max(out["rss_samples_mib"])
    assert out["warmup_s"] == 0.6
    growth = 100 * (out["rss_end_mib"] - out["rss_warm_mib"]) / out["rss_warm_mib"]
    assert out["growth_pct"] == round(growth, 1)
    assert out["max_growth_pct"] == -1 and out["flat"] is False
    assert out["switch_cpu_pct"] > 0 and 0 < out["receipt_p50_ms"] <= out["receipt_p99_ms"]


def test_the_summary_measures_from_the_end_of_the_warm_up():
    samples = [(0.0, 60.0), (5.0, 70.0), (10.0, 80.0), (15.0, 80.0), (20.0, 82.0), (25.0, 84.0)]
    out = bench_soak.summary(samples, 25.0, 10.0)
    assert out["warmup_s"] == 5.0
    assert (out["rss_start_mib"], out["rss_warm_mib"], out["rss_end_mib"]) == (60.0, 70.0, 84.0)
    assert out["growth_pct"] == 20.0 and out["flat"] is False
    assert out["rss_max_mib"] == 84.0 and out["rss_max_after_warmup_mib"] == 84.0
    assert out["slope_mib_per_h"] == 2160.0  # 0.6 MiB/s

    flat = bench_soak.summary([(0.0, 60.0), (10.0, 80.0), (20.0, 81.0), (30.0, None)], 25, 10)
    assert (flat["rss_warm_mib"], flat["rss_end_mib"], flat["growth_pct"]) == (80.0, 81.0, 1.2)
    assert flat["flat"] is True and flat["samples"] == 3

    with pytest.raises(bench.BenchError, match="RSS could not be read"):
        bench_soak.summary([(0.0, None)], 10, 10)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (dict(nodes=2, store_url="postgresql+psycopg://x/y"), "one node"),
        (dict(duration=0), "--duration"),
        (dict(rate=0), "--rate"),
        (dict(target="127.0.0.1:2775"), "no --target"),
    ],
)
def test_soak_options_are_checked_before_anything_starts(options, error):
    with pytest.raises(bench.BenchError, match=error):
        bench.run(bench.Options(mode="soak", **options))


def test_soak_defaults_to_carrier_sim_processes():
    opts = bench_soak.resolve_soak(bench.Options(mode="soak"))
    assert (opts.simulators, opts.carrier_binds, opts.duration, opts.rate) == ("out", 2, 600, 300)
    assert bench_soak.sample_every(600) == 5.0 and bench_soak.sample_every(3) == 0.15
