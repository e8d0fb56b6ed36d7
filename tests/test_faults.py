"""Faults during training: NaN/Inf losses, bad samples, failed saves, kill -9 at any moment.

The kill tests run `lpsnet train` in a subprocess through tests/fs_pause.py, which
numbers the file operations of its checkpoint saves and freezes the process just
before a chosen one; the test then kills it with SIGKILL. A straight run records the
operations and gives the reference weights; after each kill, every checkpoint that
was complete before the kill must load, and `--resume_model auto` must reach the
same final weights and best model as the straight run.
"""
import json
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

import tiny_dataset as td
from paddleseg_lpsnet.cli import main
from paddleseg_lpsnet.compat import revert_paddleseg_fixes
from paddleseg_lpsnet.core import train as train_mod
from paddleseg_lpsnet.core.builder import build_val_dataset, load_checked_config
from paddleseg_lpsnet.core.checkpoints import CheckpointManager
from paddleseg_lpsnet.core.val import evaluate
from paddleseg_lpsnet.errors import CheckpointError, TrainingError
from paddleseg_lpsnet.utils.checkpoint import read_state_dict, strict_load
from paddleseg_lpsnet.utils.config import build_model
from paddleseg_lpsnet.utils.io import recover_published

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = dict(device="cpu", progress=False, log_iters=1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return td.write_generic(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def config(data_root):
    return td.write_config(os.path.join(data_root, "tiny.yml"), td.generic_config(data_root))


@pytest.fixture(autouse=True)
def leave_upstream_code():
    yield
    revert_paddleseg_fixes()


def _weights(save_dir, name):
    return read_state_dict(os.path.join(save_dir, name))


def _assert_same(a, b):
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ----------------------------------------------------------------- NaN / Inf
class _Probe:
    """A loss term that is 0, or NaN at the given (1-based) calls; `nan_grad`: 0 with a NaN gradient."""
    name = "probe"

    def __init__(self, nan_at=(), nan_grad_at=()):
        self.nan_at, self.nan_grad_at, self.calls = set(nan_at), set(nan_grad_at), 0

    def __call__(self, logits_list, batch):
        self.calls += 1
        zero = paddle.mean(logits_list[0]) * 0.0
        if self.calls in self.nan_grad_at:
            return paddle.sqrt(zero)  # value 0, gradient inf * 0 = NaN
        return zero + (float("nan") if self.calls in self.nan_at else 0.0)


def test_nan_loss_stops_naming_iteration_part_and_batch_and_keeps_the_last_good_checkpoint(config, tmp_path):
    args = dict(iters=8, save_interval=2, keep_checkpoint_max=1, seed=0, **FAST)
    clean = str(tmp_path / "clean")
    train_mod.train(config, save_dir=clean, extra_loss_terms=[_Probe()], **dict(args, keep_checkpoint_max=0))
    save_dir = str(tmp_path / "out")
    with pytest.raises(TrainingError) as info:
        train_mod.train(config, save_dir=save_dir, extra_loss_terms=[_Probe(nan_at={5})], **args)
    message = str(info.value)
    assert re.search(r"The loss is nan \(loss_0 = [0-9.]+, probe = nan\) at iteration 5/8", message), message
    assert re.search(r"batch: train_dataset sample \d \(image \S+images/train_\d\.png", message), message
    assert f"the newest checkpoint is {os.path.join(save_dir, 'iter_4')}" in message
    assert "--nan_policy skip" in message
    assert sorted(os.listdir(save_dir)) == ["iter_4"]  # keep_checkpoint_max 1: the only good one stays
    _assert_same(_weights(save_dir, "iter_4"), _weights(clean, "iter_4"))


def test_nan_policy_skip_drops_the_batch_and_goes_on(config, tmp_path, capsys):
    save_dir = str(tmp_path / "out")
    result = train_mod.train(config, save_dir=save_dir, iters=6, save_interval=1, keep_checkpoint_max=0, seed=0,
                             nan_policy="skip", extra_loss_terms=[_Probe(nan_at={5})], **FAST)
    assert result.iteration == 6
    out = capsys.readouterr().out
    assert re.search(r"\[WARNING\]\tThe loss is nan \(loss_0 = [0-9.]+, probe = nan\) at iteration 5/6; "
                     r"batch: train_dataset sample .* Skipped this batch", out), out
    _assert_same(_weights(save_dir, "iter_5"), _weights(save_dir, "iter_4"))  # no update at 5
    w5, w6 = _weights(save_dir, "iter_5"), _weights(save_dir, "iter_6")
    assert any(not np.array_equal(w5[k], w6[k]) for k in w5)
    assert all(np.isfinite(v).all() for v in w6.values())


def test_nan_policy_skip_gives_up_after_many_in_a_row(config, tmp_path):
    with pytest.raises(TrainingError, match=r"at iteration 10/12, the 10th non-finite loss in a row .*"
                                            r"no checkpoint was written yet"):
        train_mod.train(config, save_dir=str(tmp_path / "out"), iters=12, save_interval=100, seed=0,
                        nan_policy="skip", extra_loss_terms=[_Probe(nan_at=range(1, 100))], **FAST)


def test_weights_that_became_nan_are_never_checkpointed(config, tmp_path):
    save_dir = str(tmp_path / "out")
    with pytest.raises(TrainingError, match=r"Tensor \S+ holds NaN or Inf at iteration 2 .*no checkpoint "
                                            r"was written from these weights; the newest checkpoint is \S+iter_1"):
        train_mod.train(config, save_dir=save_dir, iters=4, save_interval=1, keep_checkpoint_max=1, seed=0,
                        extra_loss_terms=[_Probe(nan_grad_at={2})], **FAST)
    assert sorted(os.listdir(save_dir)) == ["iter_1"]
    assert all(np.isfinite(v).all() for v in _weights(save_dir, "iter_1").values())


def test_cli_diverging_run_stops_with_one_line_naming_the_iteration(config, tmp_path, capsys):
    save_dir = str(tmp_path / "out")
    rc = main(["train", "--config", config, "--save_dir", save_dir, "--iters", "6", "--save_interval", "1",
               "--seed", "0", "--device", "cpu", "--learning_rate", "1e30"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2
    assert re.match(r"lpsnet train: error: The loss is (nan|inf) \(loss_0 = \S+\) at iteration \d/6; "
                    r"batch: train_dataset sample", err), err
    newest = CheckpointManager(save_dir).latest()
    assert newest is not None and f"the newest checkpoint is {newest}." in err


# ---------------------------------------------------------------- bad samples
def _corrupt(path):
    with open(path, "wb") as f:
        f.write(b"not an image")
    return path


@pytest.fixture
def damaged_root(data_root, tmp_path):
    import shutil
    return shutil.copytree(data_root, str(tmp_path / "data"))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_skip_bad_samples_in_training_warns_once_and_trains(damaged_root, tmp_path, capsys, num_workers):
    bad = _corrupt(os.path.join(damaged_root, "images", "train_1.png"))
    config = td.write_config(tmp_path / "c.yml", td.generic_config(damaged_root))
    rc = main(["train", "--config", config, "--save_dir", str(tmp_path / "out"), "--iters", "8",
               "--save_interval", "8", "--seed", "0", "--device", "cpu", "--num_workers", str(num_workers),
               "--skip_bad_samples"])
    out = capsys.readouterr().out
    assert rc == 0
    warning = f"Skipped a bad sample (--skip_bad_samples): train_dataset sample 1 (image {bad}"
    assert out.count(warning) == 1, out  # 8 samples, batch 2, 8 iterations: two epochs, one warning
    assert "Trained to iteration 8" in out


def test_skip_bad_samples_in_evaluation_leaves_them_out_of_the_metrics(damaged_root, tmp_path, capsys):
    bad = _corrupt(os.path.join(damaged_root, "images", "val_1.png"))
    config = td.write_config(tmp_path / "c.yml", td.generic_config(damaged_root))
    with open(os.path.join(damaged_root, "val.txt")) as f:
        good_lines = [line for line in f if "val_1.png" not in line]
    with open(os.path.join(damaged_root, "val_good.txt"), "w") as f:
        f.writelines(good_lines)
    good_config = td.write_config(tmp_path / "good.yml", td.generic_config(damaged_root))
    cfg = load_checked_config(good_config, opts=[f"val_dataset.val_path={damaged_root}/val_good.txt"])
    model = build_model(load_checked_config(config))
    messages = []
    skipped = evaluate(model, build_val_dataset(load_checked_config(config), config), progress=False,
                       skip_bad_samples=True, on_skip=messages.append)
    reference = evaluate(model, build_val_dataset(cfg, good_config), progress=False)
    assert skipped.num_images == reference.num_images == 2
    np.testing.assert_array_equal(skipped.class_iou, reference.class_iou)
    assert len(messages) == 1 and f"val_dataset sample 1 (image {bad}" in messages[0]
    weights = str(tmp_path / "w.pdparams")
    paddle.save(model.state_dict(), weights)
    assert main(["val", "--config", config, "--model_path", weights, "--device", "cpu", "--skip_bad_samples"]) == 0
    captured = capsys.readouterr()
    assert "#Images: 2 " in captured.out
    assert f"Skipped a bad sample: val_dataset sample 1 (image {bad}" in captured.out + captured.err


# ------------------------------------------------------- failed saves, rotation
def test_failed_save_with_keep_one_keeps_the_only_checkpoint_and_best_model(config, tmp_path, monkeypatch):
    save_dir = str(tmp_path / "out")
    args = dict(save_interval=2, keep_checkpoint_max=1, do_eval=True, seed=0, **FAST)
    train_mod.train(config, save_dir=save_dir, iters=2, **args)
    before = {name: _weights(save_dir, name) for name in ("iter_2", "best_model")}
    real_save = paddle.save

    def failing_save(obj, path, *a, **k):  # the disk fills during the next checkpoint (either directory)
        if ".best_model." in path or ".iter_4." in path:
            raise OSError(28, "No space left on device")
        return real_save(obj, path, *a, **k)
    monkeypatch.setattr(paddle, "save", failing_save)
    with pytest.raises(CheckpointError, match=r"Cannot write checkpoint \S+: .*No space left .*the newest complete "
                                              r"checkpoint is \S+iter_2"):
        train_mod.train(config, save_dir=save_dir, iters=4, resume_model="auto", **args)
    assert sorted(os.listdir(save_dir)) == ["best_model", "iter_2"]  # no partial directories
    for name, weights in before.items():
        _assert_same(_weights(save_dir, name), weights)


def test_recover_puts_back_a_directory_whose_replacement_never_arrived(tmp_path):
    for name in ("best_model", ".best_model.old-abc123", ".iter_4.partial-xyz", ".iter_2.old-q1", "iter_2",
                 ".notes"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.pdparams").write_text(name)
    (tmp_path / "best_model").rename(tmp_path / ".best_model.partial-new")  # killed between the two renames
    actions = recover_published(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [".notes", "best_model", "iter_2"]
    assert (tmp_path / "best_model" / "model.pdparams").read_text() == ".best_model.old-abc123"
    assert (tmp_path / "iter_2" / "model.pdparams").read_text() == "iter_2"
    assert len(actions) == 4 and any(a.startswith("restored") and a.endswith(
        "(a crash came while it was being replaced)") for a in actions)


# -------------------------------------------------------------------- kill -9
# lr 0.02: the val mIoU rises at every checkpoint, so best_model is replaced at each
KILL_RUN = dict(iters=8, save_interval=2, keep_checkpoint_max=1, seed=0, learning_rate=0.02)
KILL_ARGS = [*(a for k, v in KILL_RUN.items() for a in (f"--{k}", str(v))), "--do_eval", "--device", "cpu",
             "--log_iters", "1"]


def _launch(config, save_dir, env_extra):
    env = dict(os.environ, FS_PAUSE_ROOT=save_dir, **env_extra)
    cmd = [sys.executable, os.path.join(ROOT, "tests", "fs_pause.py"), "train", "--config", config,
           "--save_dir", save_dir, *KILL_ARGS]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _events(log):
    """[(n, operation, path, source of a rename or "")]."""
    events = []
    with open(log) as f:
        for line in f.read().splitlines():
            n, op, rest = line.split(" ", 2)
            path, _, source = rest.partition(" <- ")
            events.append((int(n), op, path, source))
    return events


@pytest.fixture(scope="module")
def straight(config, tmp_path_factory):
    """The uninterrupted run: its file operations, numbered, and its final checkpoints."""
    base = tmp_path_factory.mktemp("straight")
    save_dir, log = str(base / "out"), str(base / "fs.log")
    proc = _launch(config, save_dir, {"FS_PAUSE_LOG": log})
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return save_dir, _events(log)


def _published(events, save_dir, name):
    """Numbers of the operations that put save_dir/name in place."""
    target = os.path.join(save_dir, name)
    return [n for n, op, path, _ in events if op in ("replace", "exchange") and path == target]


def _expected_before(events, save_dir, stop):
    """iter_N directories complete before operation `stop`, and whether best_model was."""
    done = set()
    for n, op, path, source in events:
        if n >= stop:
            break
        name = os.path.relpath(path, save_dir)
        if op in ("replace", "exchange") and re.fullmatch(r"iter_\d+", name):
            done.add(name)
        elif op == "replace" and source:  # a checkpoint renamed away to be deleted
            done.discard(os.path.relpath(source, save_dir))
    best = any(n < stop for n in _published(events, save_dir, "best_model"))
    return done, best


def _kill_at(config, save_dir, at, tmp_path):
    mark = str(tmp_path / f"paused_{at}")
    proc = _launch(config, save_dir, {"FS_PAUSE_AT": str(at), "FS_PAUSE_MARK": mark})
    deadline = time.time() + 600
    while not os.path.exists(mark):
        if proc.poll() is not None:
            pytest.fail(f"the run ended before operation {at}:\n{proc.stdout.read()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"operation {at} not reached")
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    with open(mark) as f:
        return f.read().strip()


def _assert_loadable(config, path):
    """A checkpoint directory loads: strict weights, optimizer state, train state, random states."""
    model = build_model(load_checked_config(config))
    strict_load(model, read_state_dict(path), path)
    assert isinstance(paddle.load(os.path.join(path, "model.pdopt")), dict)
    with open(os.path.join(path, "train_state.json")) as f:
        assert json.load(f)["iteration"] == int(os.path.basename(path).split("_")[1])
    with open(os.path.join(path, "train_state.pkl"), "rb") as f:
        assert "rng" in pickle.load(f)


def _check_kill_and_resume(config, straight, at, tmp_path):
    reference, events = straight
    save_dir = str(tmp_path / f"killed_{at}")
    paused = _kill_at(config, save_dir, at, tmp_path)
    assert paused.split(" ", 2)[:2] == [str(at), events[at - 1][1]], (paused, events[at - 1])
    want, best = _expected_before(events, reference, at)
    found = {os.path.basename(p) for _, p in CheckpointManager(save_dir).complete()}
    assert found == want, f"killed before {paused}: found {found}, expected {want}"
    for name in found:
        _assert_loadable(config, os.path.join(save_dir, name))
    if best:
        model = build_model(load_checked_config(config))
        strict_load(model, read_state_dict(os.path.join(save_dir, "best_model")), "best_model")
    result = train_mod.train(config, save_dir=save_dir, resume_model="auto", do_eval=True, **KILL_RUN, **FAST)
    assert result.iteration == 8
    for name in ("iter_8", "best_model"):
        _assert_same(_weights(save_dir, name), _weights(reference, name))
    assert sorted(os.listdir(save_dir)) == sorted(os.listdir(reference))  # nothing left of the kill


def _operation(events, save_dir, op, pattern, occurrence=0, source=None):
    found = [n for n, o, path, src in events if o == op and re.fullmatch(pattern, os.path.relpath(path, save_dir))
             and (source is None or src == os.path.join(save_dir, source))]
    assert len(found) > occurrence, f"no {op} {pattern} #{occurrence} in the run's operations"
    return found[occurrence]


@pytest.mark.parametrize("point", ["optimizer file half-written", "best_model swapped, old one not deleted",
                                   "previous checkpoint half-deleted by the rotation"])
def test_kill_9_during_a_save_loses_nothing_and_resume_matches_a_straight_run(config, straight, tmp_path, point):
    """8 iterations in one go == killed in the save at iteration 4 or 6, then --resume_model auto to 8."""
    reference, events = straight
    assert len(_published(events, reference, "best_model")) == 4, "best_model must be replaced at every save"
    at = {
        "optimizer file half-written": lambda: _operation(
            events, reference, "paddle.save", r"\.iter_4\.partial-\w+/\.tmp-\w+model\.pdopt"),
        "best_model swapped, old one not deleted": lambda: _published(events, reference, "best_model")[1] + 1,
        "previous checkpoint half-deleted by the rotation": lambda: _operation(
            events, reference, "rmtree", r"\.iter_4\.partial-\w+"),
    }[point]()
    _check_kill_and_resume(config, straight, at, tmp_path)


@pytest.mark.slow
def test_kill_9_before_every_file_operation_of_two_saves(config, straight, tmp_path):
    """Every operation from the first of the checkpoint at iteration 4 (its best_model) to the
    last of iteration 6's (deleting iter_4); a kill at an rmtree comes after one file is gone."""
    reference, events = straight
    first = _operation(events, reference, "mkdtemp", r"\.best_model\.partial-", occurrence=1)
    last = _operation(events, reference, "rmtree", r"\.iter_4\.partial-\w+")
    for at in range(first, last + 1):
        _check_kill_and_resume(config, straight, at, tmp_path)


@pytest.mark.slow
def test_kill_9_at_random_moments(config, straight, tmp_path):
    """No pause hook: kill -9 at random times after the first save, then resume to the end."""
    reference, _ = straight
    rng = random.Random(0)
    for attempt in range(4):
        save_dir = str(tmp_path / f"run_{attempt}")
        proc = _launch(config, save_dir, {})
        for line in proc.stdout:
            if "[TRAIN] Saved" in line:
                break
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        for _, path in CheckpointManager(save_dir).complete():
            _assert_loadable(config, path)
        train_mod.train(config, save_dir=save_dir, resume_model="auto", do_eval=True, **KILL_RUN, **FAST)
        _assert_same(_weights(save_dir, "iter_8"), _weights(reference, "iter_8"))
