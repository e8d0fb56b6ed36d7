"""Data-parallel `lpsnet train` under `python -m paddle.distributed.launch` on this CPU (gloo).

Paddle's launcher picks the gloo backend on a CPU build by itself
(PADDLE_DISTRI_BACKEND=gloo); nothing else is needed. The runs go through
tests/dist_entry.py (the CLI plus a batch-norm-free test model and a dump of each
rank's parameters).

How the comparison is made meaningful: with batch norm, each rank normalises with the
statistics of its own half batch, and Paddle 3.3.1 has no CPU SyncBatchNorm kernel, so
a 2-process run and a 1-process run on the same global batch compute different
functions. The comparison therefore uses a model without batch norm and labels
without ignore pixels (each rank's cross-entropy is a mean over its own valid pixels;
with ignore pixels the per-rank means weight pixels slightly differently from the
global mean, a 1e-5 difference after 4 steps). Then the two runs differ only by
floating-point summation order. A separate run checks that an LPS-Net (with BN) ends
identical on both ranks and that the distributed evaluation is that of the saved model.
"""
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest

import tiny_dataset as td
from paddleseg_lpsnet.compat import revert_paddleseg_fixes
from paddleseg_lpsnet.core import train as train_mod
from paddleseg_lpsnet.core.builder import build_val_dataset, load_checked_config
from paddleseg_lpsnet.core.val import evaluate
from paddleseg_lpsnet.errors import ConfigError
from paddleseg_lpsnet.utils.checkpoint import read_state_dict
from paddleseg_lpsnet.utils.config import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY = os.path.join(ROOT, "tests", "dist_entry.py")
PLAIN_MODEL = {"type": "DistTestPlainSegNet", "num_classes": td.NUM_CLASSES}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return td.write_generic(tmp_path_factory.mktemp("tiny"), ignore_fraction=0.0)


@pytest.fixture(autouse=True)
def leave_upstream_code():
    yield
    revert_paddleseg_fixes()


def _train(tmp_path, name, config, batch_size, nproc, *flags, env=None, returncode=0):
    """Run `train` with `nproc` processes (1: no launcher); returns (save_dir, dumps, log dir)."""
    save_dir, dumps, logs = (str(tmp_path / f"{name}_{part}") for part in ("out", "dumps", "logs"))
    train_args = ["train", "--config", config, "--save_dir", save_dir, "--batch_size", str(batch_size),
                  "--seed", "0", "--device", "cpu", "--log_iters", "1", *flags]
    launcher = [] if nproc == 1 else ["-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
                                      "--log_dir", logs]
    proc = subprocess.run([sys.executable, *launcher, ENTRY, *train_args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, DIST_DUMP=dumps, **(env or {})))
    logs_text = "".join(open(p).read() for p in sorted(glob.glob(os.path.join(logs, "workerlog.*"))))
    assert (proc.returncode == 0) == (returncode == 0), (proc.stdout + proc.stderr + logs_text)[-4000:]
    return save_dir, dumps, logs


def _load(path):
    return {k: v.numpy() for k, v in paddle.load(path).items()}


def _worker_log(logs, rank):
    with open(os.path.join(logs, f"workerlog.{rank}")) as f:
        return f.read()


def test_two_processes_match_one_process_on_the_same_global_batch(data_root, tmp_path):
    config = td.write_config(tmp_path / "plain.yml", td.generic_config(data_root, model=PLAIN_MODEL))
    flags = ("--iters", "6", "--save_interval", "3", "--do_eval", "--use_vdl")  # 3 epochs of 2 global batches
    single, single_dumps, _ = _train(tmp_path, "single", config, 4, 1, *flags)
    dist, dist_dumps, logs = _train(tmp_path, "dist", config, 2, 2, *flags)
    rank0, rank1 = _load(os.path.join(dist_dumps, "rank0.pdparams")), _load(os.path.join(dist_dumps, "rank1.pdparams"))
    one = _load(os.path.join(single_dumps, "rank0.pdparams"))
    assert set(rank0) == set(rank1) == set(one)
    for key in one:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
        np.testing.assert_allclose(rank0[key], one[key], rtol=0, atol=1e-6, err_msg=key)
        assert not np.allclose(one[key], 0)
    saved = read_state_dict(os.path.join(dist, "iter_6"))
    for key in saved:
        np.testing.assert_array_equal(saved[key], rank0[key], err_msg=key)
    # rank 0 alone writes: one VisualDL file, PaddleSeg's layout, the log lines in rank 0's log only
    listing = sorted(os.listdir(dist))
    assert listing[:3] == ["best_model", "iter_3", "iter_6"] and len(listing) == 4
    assert listing[3].startswith("vdlrecords.")
    assert "[TRAIN] Saved" in _worker_log(logs, 0) and "[EVAL] #Images: 3" in _worker_log(logs, 0)
    for line in ("[TRAIN]", "[EVAL]", "Trained to iteration"):
        assert line not in _worker_log(logs, 1)
    with open(os.path.join(single, "iter_6", "train_state.json")) as f, \
            open(os.path.join(dist, "iter_6", "train_state.json")) as g:
        assert json.load(g)["best_miou"] == pytest.approx(json.load(f)["best_miou"], abs=1e-4)


@pytest.mark.slow
def test_batch_norm_model_ends_identical_on_both_ranks_and_evaluates_what_it_saves(data_root, tmp_path):
    config = td.write_config(tmp_path / "lpsnet.yml", td.generic_config(data_root))
    dist, dumps, _ = _train(tmp_path, "dist", config, 2, 2, "--iters", "4", "--save_interval", "4", "--do_eval")
    rank0, rank1 = _load(os.path.join(dumps, "rank0.pdparams")), _load(os.path.join(dumps, "rank1.pdparams"))
    assert any("_mean" in key for key in rank0)
    for key in rank0:  # weights by data parallelism; BN statistics shared from rank 0 at the checkpoint
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
    with open(os.path.join(dist, "iter_4", "train_state.json")) as f:
        reported = json.load(f)["best_miou"]
    model = build_model(load_checked_config(config))
    model.set_state_dict(read_state_dict(os.path.join(dist, "iter_4")))
    again = evaluate(model, build_val_dataset(load_checked_config(config), config), progress=False)
    assert reported == pytest.approx(again.miou, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_a_nan_loss_on_one_rank_stops_or_skips_on_both_without_a_hang(data_root, tmp_path, policy):
    config = td.write_config(tmp_path / "plain.yml", td.generic_config(data_root, model=PLAIN_MODEL))
    dist, dumps, logs = _train(tmp_path, policy, config, 2, 2, "--iters", "4", "--save_interval", "2",
                               "--nan_policy", policy, env={"DIST_NAN": "1:3"}, returncode=policy == "stop")
    if policy == "stop":
        assert ("lpsnet train: error: The loss of another rank is not finite at iteration 3/4"
                in _worker_log(logs, 0))
        assert re.search(r"lpsnet train: error: The loss is nan \(loss_0 = \S+\) at iteration 3/4",
                         _worker_log(logs, 1))
        assert sorted(os.listdir(dist)) == ["iter_2"]
        return
    assert "The loss of another rank is not finite at iteration 3/4" in _worker_log(logs, 0)
    rank0, rank1 = _load(os.path.join(dumps, "rank0.pdparams")), _load(os.path.join(dumps, "rank1.pdparams"))
    for key in rank0:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)


def test_sync_bn_with_several_cpu_processes_is_a_clear_error(data_root, tmp_path, monkeypatch):
    """Paddle 3.3.1 registers sync_batch_norm for GPUs only; two CPU ranks cannot use it."""
    config = td.write_config(tmp_path / "c.yml", td.generic_config(data_root, sync_bn=True))
    monkeypatch.setattr(paddle.distributed, "get_world_size", lambda *a: 2)
    with pytest.raises(ConfigError, match=r"`sync_bn: true` asks for SyncBatchNorm, whose Paddle 3\.3\.1 kernel "
                                          r"runs on GPUs only, but this run is on cpu with 2 processes"):
        train_mod.train(config, save_dir=str(tmp_path / "out"), iters=1, device="cpu", progress=False)


def test_sync_bn_in_one_process_trains_with_plain_batch_norm(data_root, tmp_path, capsys):
    config = td.write_config(tmp_path / "c.yml", td.generic_config(data_root, sync_bn=True))
    result = train_mod.train(config, save_dir=str(tmp_path / "out"), iters=1, save_interval=1, device="cpu",
                             progress=False)
    assert result.iteration == 1
    assert "sync_bn: one process, so batch norm is already synchronised" in capsys.readouterr().out
