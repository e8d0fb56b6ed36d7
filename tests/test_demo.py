"""`lpsnet demo`: every step runs and summary.json says where everything is."""
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from paddleseg_lpsnet.demo import run_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _check_summary(out, summary, size):
    assert json.load(open(os.path.join(out, "summary.json"))) == summary
    for key in ("miou", "miou_flip", "export_dir", "prediction"):
        assert key in summary
    assert 0.0 <= summary["miou"] <= 1.0 and 0.0 <= summary["miou_flip"] <= 1.0
    assert os.path.isfile(os.path.join(summary["export_dir"], "deploy.yaml"))
    prediction = Image.open(summary["prediction"])
    assert prediction.mode == "P" and prediction.size == (size[1], size[0])  # a val image's size
    assert any(f.startswith("vdlrecords") for f in os.listdir(summary["vdl_dir"]))
    assert set(summary["baselines_miou"]) == {"constant", "sky/road", "position prior"}


def test_demo_runs_every_step_on_a_tiny_set(tmp_path):
    out = str(tmp_path / "demo")
    summary = run_demo(out, num_train=4, num_val=2, size=(64, 128), iters=2, device="cpu",
                       echo=lambda *a: None)
    _check_summary(out, summary, (64, 128))
    assert summary["iters"] == 2
    # a second run reuses the generated data and, seeded, gives the same result
    meta = os.path.join(summary["data"], "synth_cityscapes.json")
    before = os.path.getmtime(meta)
    again = run_demo(out, num_train=4, num_val=2, size=(64, 128), iters=2, device="cpu",
                     echo=lambda *a: None)
    assert os.path.getmtime(meta) == before
    assert again["miou"] == summary["miou"]


@pytest.mark.slow
def test_demo_learns(tmp_path):
    """The README's main job, as a user runs it: LPS-Net-S clearly beats trivial predictors."""
    out = str(tmp_path / "demo")
    res = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "demo", "--out", out, "--device", "cpu"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.load(open(os.path.join(out, "summary.json")))
    _check_summary(out, summary, (256, 512))
    assert summary["miou"] > 2 * max(summary["baselines_miou"].values())
