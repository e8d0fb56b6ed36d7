"""`lpsnet scale` with real proxy training: outputs, configs that train, resume."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from paddleseg_lpsnet.scaling import Move
from paddleseg_lpsnet.scaling.runner import ScaleSettings, candidate_config, run_scale
from test_scaling_search import fake_latency
from tiny_dataset import generic_config, write_config, write_generic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOVES = (Move("width", (0, 0, 0, 32, 32)), Move("resolution", (1 / 8, 0, 0)))


@pytest.fixture(scope="module")
def base_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale_data")
    write_generic(str(root / "data"), num_train=6, num_val=2, height=48, width=96)
    return write_config(str(root / "base.yml"), generic_config(str(root / "data")))


def _settings(config):
    return ScaleSettings(config=config, input_size=[48, 96], proxy_iters=3, proxy_batch_size=2,
                         latency_backend="paddle")


def _trained(out):
    """{candidate key: mtime of its proxy-trained weights}."""
    root = os.path.join(out, "candidates")
    return {key: os.path.getmtime(os.path.join(root, key, "train", "iter_3", "model.pdparams"))
            for key in os.listdir(root)}


def test_search_writes_configs_table_plot_and_resumes(base_config, tmp_path):
    out = str(tmp_path / "search")
    path, log = run_scale(_settings(base_config), out, steps=1, device="cpu",
                          latency_fn=fake_latency, moves=MOVES, echo=lambda *a: None)
    trained = _trained(out)
    assert len(trained) == 3  # the start and two candidates
    assert len(path) == 2 and path[1].key in trained
    for name in ("search.jsonl", "summary.md", "frontier.png", "configs/step_0.yml", "configs/step_1.yml"):
        assert os.path.isfile(os.path.join(out, name)), name
    records = [json.loads(l) for l in open(os.path.join(out, "search.jsonl"))]
    cands = [r for r in records if r["type"] == "candidate"]
    assert len(cands) == 3 and all(0.0 <= r["miou"] <= 1.0 for r in cands)
    assert all(r["proxy"]["iters"] == 3 for r in cands)
    table = open(os.path.join(out, "summary.md")).read()
    assert f"| {path[1].latency_ms:.2f} | {path[1].miou:.4f} |" in table

    run_scale(_settings(base_config), out, steps=1, device="cpu", latency_fn=fake_latency,
              moves=MOVES, echo=lambda *a: None)
    assert _trained(out) == trained, "a finished search trains nothing again"

    step1 = yaml.safe_load(open(os.path.join(out, "configs", "step_1.yml")))
    assert step1["model"]["backbone"] == {"type": "LPSNetBackbone", "in_channels": 3,
                                          **path[1].arch.backbone_kwargs(), "pretrained": None}
    res = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "train", "--config",
                          os.path.join(out, "configs", "step_1.yml"), "--iters", "2", "--batch_size", "2",
                          "--device", "cpu", "--save_dir", str(tmp_path / "train_step1")],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert os.path.isfile(tmp_path / "train_step1" / "iter_2" / "model.pdparams")


def test_candidate_config_keeps_the_recipe(base_config):
    from paddleseg_lpsnet.scaling import TINY_ARCH
    dic = yaml.safe_load(open(base_config))
    cfg = candidate_config(dic, TINY_ARCH, 4)
    assert cfg["model"]["backbone"]["scale_ratios"] == [0.5]
    assert {k: v for k, v in cfg.items() if k != "model"} == {k: v for k, v in dic.items() if k != "model"}
    dic["model"]["backbone"].update(identity_init=True, in_channels=4)
    backbone = candidate_config(dic, TINY_ARCH, 4)["model"]["backbone"]
    assert backbone["identity_init"] is True and backbone["in_channels"] == 4


@pytest.mark.slow
def test_cli_search_with_real_latency(base_config, tmp_path):
    """One step over all ten moves, latency measured with Paddle Inference."""
    out = str(tmp_path / "cli")
    res = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "scale", "--config", base_config,
                          "--out", out, "--steps", "1", "--input_size", "48", "96", "--latency_backend",
                          "paddle", "--latency_repeats", "3", "--proxy_iters", "2", "--proxy_batch_size", "2",
                          "--device", "cpu"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "[scale] done" in res.stdout
    assert os.path.isfile(os.path.join(out, "configs", "step_1.yml"))


def test_latency_of_the_network_alone_and_of_the_deployed_model(base_config, tmp_path, monkeypatch):
    """The default times the network up to its low-resolution logits (exported with no
    output op); "deployed" times the model as `lpsnet export` writes it (upsampling and
    argmax). A candidate's random weights come from the search's seed, the same each time."""
    import numpy as np
    import paddle

    import paddleseg_lpsnet.deploy.benchmark as benchmark
    from paddleseg_lpsnet.deploy.suite import CLOCKS
    from paddleseg_lpsnet.scaling import TINY_ARCH
    from paddleseg_lpsnet.scaling.runner import Measurements

    def settings(scope):
        return ScaleSettings(config=base_config, input_size=[128, 256], latency_backend="onnxruntime",
                             latency_repeats=3, cpu_threads=1, latency_of=scope, latency_clock="cpu")

    real = {scope: Measurements(settings(scope), str(tmp_path), {}, num_classes=3).latency(TINY_ARCH)
            for scope in ("network", "deployed")}
    assert all(v > 0 for v in real.values()), real

    calls = []

    class Stats:
        median_ms = 1.0

    def record(model, shape, **options):
        calls.append((model, shape, options))
        return Stats()

    monkeypatch.setattr(benchmark, "measure_latency", record)
    x = paddle.to_tensor(np.random.RandomState(0).standard_normal([1, 3, 128, 256]).astype("float32"))
    outputs = {}
    for scope in ("network", "deployed", "deployed"):
        Measurements(settings(scope), str(tmp_path), {}, num_classes=3).latency(TINY_ARCH)
        model, shape, options = calls[-1]
        assert shape == [1, 3, 128, 256] and options["clock"] is CLOCKS["cpu"] and options["cpu_threads"] == 1
        with paddle.no_grad():
            outputs.setdefault(scope, []).append(model(x)[0].numpy())
        if scope == "network":
            assert options["output_op"] == "none"
        else:
            assert "output_op" not in options  # measure_latency's default: argmax
    (low,), (full, again) = outputs["network"], outputs["deployed"]
    assert low.shape[1] == 3 and low.shape[2] < 128 and low.shape[3] < 256  # logits before the upsampling
    assert full.shape == (1, 3, 128, 256)
    np.testing.assert_array_equal(full, again)  # seeded: the same weights on every measurement


def test_cli_rejects_a_cpu_clock_with_several_threads(base_config, tmp_path):
    res = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "scale", "--config", base_config,
                          "--out", str(tmp_path / "s"), "--latency_clock", "cpu", "--cpu_threads", "2"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "--cpu_threads 1" in res.stderr
