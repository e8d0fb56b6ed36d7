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


def test_latency_of_the_network_alone_and_of_the_deployed_model(base_config, tmp_path):
    """The default times the network up to its low-resolution logits; "deployed" adds the
    final upsampling and argmax, so on the same architecture it cannot be much faster."""
    import numpy as np
    import paddle

    from paddleseg_lpsnet.deploy.benchmark import lowres_network
    from paddleseg_lpsnet.scaling import TINY_ARCH
    from paddleseg_lpsnet.scaling.runner import Measurements

    measure = Measurements(_settings(base_config), str(tmp_path), {}, num_classes=3)
    model = measure.model(TINY_ARCH)
    model.eval()
    x = paddle.to_tensor(np.zeros([1, 3, 64, 128], "float32"))
    low = lowres_network(model)(x)[0]
    assert low.shape[1] == 3 and low.shape[2] < 64 and low.shape[3] < 128
    np.testing.assert_allclose(model(x)[0].shape, [1, 3, 64, 128])

    results = {}
    for scope in ("network", "deployed"):
        settings = ScaleSettings(config=base_config, input_size=[128, 256], latency_backend="onnxruntime",
                                 latency_repeats=7, cpu_threads=1, latency_of=scope, latency_clock="cpu")
        results[scope] = Measurements(settings, str(tmp_path), {}, num_classes=3).latency(TINY_ARCH)
    assert all(v > 0 for v in results.values())
    assert results["deployed"] > 0.7 * results["network"], results


def test_cli_rejects_a_cpu_clock_with_several_threads(base_config, tmp_path):
    res = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "scale", "--config", base_config,
                          "--out", str(tmp_path / "s"), "--latency_clock", "cpu", "--cpu_threads", "2"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2 and "--cpu_threads 1" in res.stderr
