"""The benchmark scripts run end to end at toy sizes and write what they promise (slow: minutes)."""
import json
import os
import pathlib
import subprocess
import sys

import pytest
from tiny_dataset import generic_config, write_config, write_generic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


def run_script(name, *args):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", name), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_deploy_ablation(tmp_path):
    before = tmp_path / "sparse_before.py"  # another version of the sparse argmax: here the same file
    before.write_text((pathlib.Path(ROOT) / "paddleseg_lpsnet" / "deploy" / "sparse_argmax.py").read_text())
    out = run_script("deploy_ablation.py", "--variant", "S", "--size", "64x128", "--only", "sparse", "dense",
                     "upstream_ort", "network", "sparse_from", "sparse_dynamic", "--sparse_from", str(before),
                     "--seed", "3", "--rounds", "1", "--repeats", "2", "--save_dir", str(tmp_path))
    (result,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert set(result["runs_ms"]) == {"sparse", "dense", "upstream_ort", "network", "sparse_from", "sparse_dynamic"}
    assert all(len(v) == 2 for v in result["runs_ms"].values())
    assert result["agreement_reference"] == "dense"
    assert all(result["agreement"][v] >= 0.9999 for v in ("sparse", "sparse_from", "sparse_dynamic"))
    assert result["seed"] == 3 and 0 < result["boundary_share"] < 1
    assert "| sparse |" in out and "% of floor" in out and "boundary places" in out


def test_deploy_ablation_sparse_from_needs_its_file(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "deploy_ablation.py"), "--only", "sparse",
                           "--sparse_from", str(tmp_path / "missing.py")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "sparse_from variant go together" in proc.stderr
    other = tmp_path / "other.py"
    other.write_text("x = 1\n")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "deploy_ablation.py"), "--only",
                           "sparse_from", "--sparse_from", str(other)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "defines no sparse_upsampled_argmax" in proc.stderr


def test_train_speed(tmp_path):
    out = run_script("train_speed.py", "--crop", "64x128", "--batch_size", "2", "--iters", "2", "--warmup", "1",
                     "--rounds", "1", "--image_size", "128x256", "--save_dir", str(tmp_path))
    result = json.loads((tmp_path / "train_speed.json").read_text())
    assert len(result["iters_per_s"]["ours"]) == 1 and len(result["iters_per_s"]["upstream"]) == 1
    assert result["crop_hw"] == [64, 128] and result["batch_size"] == 2 and result["ratio"] > 0
    assert "ours / upstream" in out


def test_int8_quality(tmp_path):
    data = write_generic(str(tmp_path / "data"), num_train=6, num_val=3)
    model = {"type": "LPSNetSeg", "num_classes": 4,
             "backbone": {"type": "LPSNetBackbone", "depths": [1, 1, 1, 1, 1],
                          "channels": [8, 8, 16, 32, 32], "scale_ratios": [1.0, 0.5]}}
    config = write_config(tmp_path / "tiny.yml", generic_config(data, model=model, iters=10, batch_size=2))
    proc = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "train", "--config", config, "--device", "cpu",
                           "--save_dir", str(tmp_path / "out"), "--save_interval", "10"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = run_script("int8_quality.py", "--config", config, "--model_path",
                     str(tmp_path / "out" / "iter_10" / "model.pdparams"), "--calib_dir",
                     os.path.join(data, "images"), "--calib_num", "4", "--rounds", "1", "--repeats", "2",
                     "--cpu_threads", "2",
                     "--save_dir", str(tmp_path / "int8"), "--keep_exports", str(tmp_path / "kept"), "--keep_val", "3")
    result = json.loads((tmp_path / "int8" / "int8_quality.json").read_text())
    assert result["val_images"] == 3 and 0 <= result["agreement"] <= 1
    assert set(result["miou"]) == {"fp32", "int8"} and all(0 <= v <= 1 for v in result["miou"].values())
    assert set(result["latency_runs_ms"]) == {"fp32", "int8"}
    assert "| int8 |" in out

    # The kept exports, timed and checked by the Paddle-free script as on another machine.
    out = run_script("int8_elsewhere.py", str(tmp_path / "kept"), "--threads", "1", "2", "--size", "64x96",
                     "--rounds", "1", "--repeats", "2", "--warmup", "1", "--profile",
                     "--save_dir", str(tmp_path / "elsewhere"))
    elsewhere = json.loads((tmp_path / "elsewhere" / "int8_elsewhere.json").read_text())
    assert [row["threads"] for row in elsewhere["rows"]] == [1, 2] and elsewhere["val_images"] == 3
    assert all(len(row["runs_ms"]["int8"]) == 2 and row["ratio"] > 0 for row in elsewhere["rows"])
    # Same models, images, runtime and threads as int8_quality.py's own pass: the same figures.
    assert elsewhere["agreement"] == pytest.approx(result["agreement"], abs=1e-9)
    assert elsewhere["miou"] == pytest.approx(result["miou"], abs=1e-9)
    assert "| threads |" in out
    profile = elsewhere["op_profile_ms"]  # the int8 model's convolutions run as QLinearConv, fp32's as Conv
    assert "QLinearConv" in profile["int8"] and "Conv" in profile["fp32"] and "QLinearConv" not in profile["fp32"]
    # Fixed-size variants (convolutions only / + adds / + adds, resizes, concats), one of them checked elsewhere.
    out = run_script("int8_variants.py", "--config", config, "--model_path",
                     str(tmp_path / "out" / "iter_10" / "model.pdparams"), "--calib_dir", os.path.join(data, "images"),
                     "--calib_num", "3", "--size", "64x96", "--out", str(tmp_path / "variants"))
    assert sorted(os.listdir(tmp_path / "variants")) == ["fp32", "int8", "int8_adds", "int8_adds_resizes", "val.npz"]
    import onnx
    quantized = {v: sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(tmp_path / "variants" / v / "model.onnx"))
                        .graph.node) for v in ("int8", "int8_adds", "int8_adds_resizes")}
    assert quantized["int8"] < quantized["int8_adds"] <= quantized["int8_adds_resizes"]  # each variant quantizes more
    run_script("int8_elsewhere.py", str(tmp_path / "variants"), "--int8", "int8_adds", "--threads", "1", "--size",
               "64x96", "--rounds", "1", "--repeats", "1", "--warmup", "0", "--save_dir", str(tmp_path / "adds"))
    adds = json.loads((tmp_path / "adds" / "int8_elsewhere.json").read_text())
    assert adds["int8"] == "int8_adds" and adds["val_images"] == 1 and 0.5 <= adds["agreement"] <= 1
    weights = str(tmp_path / "out" / "iter_10" / "model.pdparams")

    def fails(script, *args):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script), *args],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        return proc.stderr

    # never writes over a kept folder
    assert "exists; give a new folder" in fails("int8_quality.py", "--config", config, "--model_path", weights,
                                                "--calib_dir", data, "--keep_exports", str(tmp_path / "kept"))
    # a missing input is named before any work; a broken config is one line, not a traceback
    assert fails("int8_variants.py", "--config", config, "--model_path", weights, "--calib_dir",
                 str(tmp_path / "nope"), "--out", str(tmp_path / "v2")).strip().endswith(
        f"--calib_dir {tmp_path / 'nope'} does not exist")
    broken = tmp_path / "broken.yml"
    broken.write_text("model: [1, 2\n")
    assert f"int8_variants.py: error: Config {broken} cannot be read" in fails(
        "int8_variants.py", "--config", str(broken), "--model_path", weights, "--calib_dir", data,
        "--out", str(tmp_path / "v3"))
    assert not os.path.exists(tmp_path / "v2") and not os.path.exists(tmp_path / "v3")


def test_onnx_op_costs():
    out = run_script("onnx_op_costs.py", "--places", "50", "--size", "32x64", "--repeats", "2")
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| op ")]
    assert len(rows) == 10 and all(float(row.rsplit("|", 2)[1]) > 0 for row in rows)
    assert any(row.startswith("| GatherElements") for row in rows) and any("Where" in row for row in rows)


def test_onnx_op_costs_convs():
    out = run_script("onnx_op_costs.py", "--convs", "--threads", "1", "--repeats", "1")
    rows = [line for line in out.splitlines() if line.startswith("| 4 x 3x3 conv")]
    assert [row.split(",")[1].strip() for row in rows] == ["24 -> 24 channels", "48 -> 48 channels",
                                                            "96 -> 96 channels"]
    assert all(float(cell) > 0 for row in rows for cell in row.strip("| ").split("|")[1:])
