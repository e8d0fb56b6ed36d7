"""lpsnet bench: what the suite computes (floors, ratios, table fields) and a tiny real run. No time is asserted."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from paddleseg_lpsnet.deploy.benchmark import GemmPeak, flop_floor_ms, machine_info, measure_gemm_peak
from paddleseg_lpsnet.deploy.suite import (SUITE_MODELS, SuiteModel, available_models, build_component,
                                           ours_vs_upstream, parse_size, run_suite, to_markdown)
from paddleseg_lpsnet.errors import ConfigError
from paddleseg_lpsnet.utils.flops import count_macs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(depths=[1, 1, 1, 1, 1], channels=[4, 8, 16, 32, 32], scale_ratios=[0.5, 0.25])
TINY_SUITE = [
    SuiteModel("tiny", "Tiny (ours)", {"type": "LPSNetSeg", "backbone": {"type": "LPSNetBackbone", **TINY}},
               "Tiny", ours=True),
    SuiteModel("upstream_tiny", "Tiny (PaddleSeg LPSNet)", {"type": "LPSNet", **TINY}, "Tiny"),
]


def test_time_round_robin_alternates_the_predictors():
    from paddleseg_lpsnet.deploy.benchmark import time_round_robin
    calls = []

    class Recorder:
        def __init__(self, name):
            self.name = name

        def run(self, batch):
            calls.append(self.name)

    ticks = iter(range(1000))
    runs = time_round_robin({"a": Recorder("a"), "b": Recorder("b")}, None, rounds=2, repeats=2, warmup=1,
                            clock=lambda: next(ticks) * 0.001)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 2
    assert {k: len(v) for k, v in runs.items()} == {"a": 4, "b": 4}
    assert runs["a"] == pytest.approx([1.0] * 4)


def test_flop_floor():
    assert flop_floor_ms(1e9, 100.0) == pytest.approx(20.0)  # 2 GFLOP at 100 GFLOP/s
    assert flop_floor_ms(17.72e9, 182.0) == pytest.approx(194.7, abs=0.1)  # LPS-Net-M, the issue's figure
    with pytest.raises(ConfigError):
        flop_floor_ms(1e9, 0)


def test_gemm_peak_is_the_best_run():
    peak = GemmPeak(threads=2, n=1000, runs_s=[0.04, 0.02, 0.05])
    assert peak.peak_gflops == pytest.approx(100.0)
    assert peak.median_gflops == pytest.approx(50.0)
    assert peak.as_dict()["peak_gflops"] == pytest.approx(100.0)


def test_measure_gemm_peak_runs_with_the_thread_count():
    peak = measure_gemm_peak(threads=1, n=256, repeats=2)
    assert peak.threads == 1 and len(peak.runs_s) == 2 and peak.peak_gflops > 0
    with pytest.raises(ConfigError):
        measure_gemm_peak(threads=1, n=8)


def test_machine_info_names_what_it_ran_on():
    info = machine_info(cpu_threads=1)
    assert info["threads_used"] == 1 and info["usable_cores"] >= 1
    for key in ("cpu", "cpu_flags", "paddle", "onnxruntime", "paddle2onnx", "numpy", "date"):
        assert info[key] is not None, key


def test_parse_size():
    assert parse_size("1024x2048") == (1024, 2048)
    for bad in ("1024", "ax2", "0x5"):
        with pytest.raises(ConfigError):
            parse_size(bad)


def test_suite_lists_the_issues_models():
    keys = {m.key for m in SUITE_MODELS}
    assert {"lpsnet_s", "lpsnet_m", "lpsnet_l", "upstream_lpsnet_s", "upstream_lpsnet_m", "upstream_lpsnet_l",
            "ppliteseg_stdc1", "stdcseg_stdc1", "bisenetv2", "fasterseg"} <= keys
    available = available_models()
    assert "lpsnet_m" in available and "upstream_lpsnet_m" in available


def test_upstream_and_ours_are_the_same_architecture():
    """Ours and upstream's LPS-Net-M: same parameter count and MACs, so the ratio compares implementations."""
    from paddleseg_lpsnet.utils.flops import count_params
    specs = {m.key: m for m in SUITE_MODELS}
    ours, upstream = (build_component(specs[k].spec) for k in ("lpsnet_m", "upstream_lpsnet_m"))
    assert count_params(ours) == count_params(upstream)
    assert count_macs(ours, [1, 3, 64, 128])["total"] == count_macs(upstream, [1, 3, 64, 128])["total"]


@pytest.fixture(scope="module")
def tiny_result():
    lines = []
    result = run_suite(models=["tiny", "upstream_tiny"], sizes=["64x96"], backends=["paddle", "onnxruntime"],
                       repeats=2, warmup=1, cpu_threads=1, gemm_n=256, gemm_repeats=2, suite=TINY_SUITE,
                       log=lines.append)
    return result, lines


def test_tiny_suite_rows_and_floors(tiny_result):
    result, lines = tiny_result
    rows = result["rows"]
    assert [(r["key"], r["backend"]) for r in rows] == [
        ("tiny", "paddle"), ("tiny", "onnxruntime"), ("upstream_tiny", "paddle"), ("upstream_tiny", "onnxruntime")]
    peak = result["peak_gflops"]
    assert peak == max(p["peak_gflops"] for p in result["gemm_peaks"]) and len(result["gemm_peaks"]) == 2
    macs = count_macs(build_component(TINY_SUITE[0].spec), [1, 3, 64, 96])["total"]
    for row in rows:
        lat = row["latency"]
        assert row["input_shape"] == [1, 3, 64, 96] and row["macs"] == macs
        assert len(lat["runs_ms"]) == 2 and lat["median_ms"] == pytest.approx(float(np.median(lat["runs_ms"])))
        assert lat["fps"] == pytest.approx(1000.0 / lat["median_ms"])
        assert row["floor_ms"] == pytest.approx(2 * macs / (peak * 1e9) * 1e3)
        assert row["floor_pct"] == pytest.approx(100 * row["floor_ms"] / lat["median_ms"])
    assert result["machine"]["threads_used"] == 1
    assert any("Tiny (ours) 64x96 onnxruntime" in line for line in lines)
    json.dumps(result)  # JSON-able as written


def test_ours_vs_upstream_ratio(tiny_result):
    result, _ = tiny_result
    (pair,) = ours_vs_upstream(result)
    by = {(r["key"], r["backend"]): r["latency"]["median_ms"] for r in result["rows"]}
    best = min(by[("tiny", "paddle")], by[("tiny", "onnxruntime")])
    assert pair["ours_ms"] == best
    assert pair["ratio_vs_upstream_paddle"] == pytest.approx(best / by[("upstream_tiny", "paddle")])
    assert pair["ratio_vs_upstream_onnxruntime"] == pytest.approx(best / by[("upstream_tiny", "onnxruntime")])


def test_markdown_table(tiny_result):
    result, _ = tiny_result
    text = to_markdown(result)
    assert "### Input 1x3x64x96" in text and "| Tiny (ours) | ONNX Runtime | " in text
    assert "% of floor" in text and "fp32 peak:" in text and result["machine"]["cpu"] in text
    assert "### Ours against PaddleSeg's `LPSNet` (same run)" in text
    table = [line for line in text.splitlines() if line.startswith("| Tiny (")]
    assert len(table) == 4 and all(line.count("|") == 10 for line in table)


def test_suite_errors():
    from paddleseg_lpsnet.deploy.benchmark import gpu_name
    if gpu_name() is None:
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            run_suite(models=["tiny"], device="gpu", suite=TINY_SUITE)
    with pytest.raises(ConfigError, match="Unknown model"):
        run_suite(models=["nope"], suite=TINY_SUITE)
    with pytest.raises(ConfigError, match="Unknown backend"):
        run_suite(models=["tiny"], backends=["tensorflow"], suite=TINY_SUITE)


def test_cli_quick_run(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "bench", "--models", "lpsnet_s",
                           "--sizes", "64x128", "--backends", "onnxruntime", "--repeats", "2", "--warmup", "1",
                           "--cpu_threads", "1", "--gemm_size", "256", "--save_dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "bench.json").read_text())
    assert [r["key"] for r in result["rows"]] == ["lpsnet_s"] and "latency" in result["rows"][0]
    assert (out / "bench.md").read_text() in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "bench", "--models", "lpsnet_x"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("lpsnet bench: error: Unknown model(s) ['lpsnet_x']")


def test_cpu_clock_needs_one_thread_and_times_the_gemm_the_same_way():
    with pytest.raises(ConfigError, match="cpu_threads 1"):
        run_suite(models=["tiny"], clock="cpu", cpu_threads=2, suite=TINY_SUITE)
    result = run_suite(models=["tiny"], sizes=["32x64"], backends=["onnxruntime"], repeats=2, warmup=1,
                       cpu_threads=1, gemm_n=128, gemm_repeats=2, clock="cpu", suite=TINY_SUITE, log=lambda *_: None)
    assert result["config"]["clock"] == "cpu" and all(p["clock"] == "cpu" for p in result["gemm_peaks"])
    assert "CPU time of the calling thread" in to_markdown(result)


def test_suite_models_get_their_weights_from_the_seed(monkeypatch):
    """Each model is built right after paddle.seed(seed): the same seed, the same weights
    (whatever ran before it); another seed, others. The sparse argmax's work depends on them."""
    import paddleseg_lpsnet.deploy.suite as suite
    built = []
    monkeypatch.setattr(suite, "_model_rows",
                        lambda spec, model, ctx: built.append(np.concatenate([p.numpy().ravel()
                                                                              for p in model.parameters()])))

    def weights(seed, models):
        built.clear()
        result = run_suite(models=models, sizes=["32x64"], backends=["onnxruntime"], gemm_n=64, gemm_repeats=1,
                           suite=TINY_SUITE, seed=seed, log=lambda *_: None)
        assert result["config"]["seed"] == seed
        return list(built)

    first = weights(5, ["tiny"])[0]
    assert np.array_equal(first, weights(5, ["upstream_tiny", "tiny"])[1])
    assert not np.array_equal(first, weights(6, ["tiny"])[0])
