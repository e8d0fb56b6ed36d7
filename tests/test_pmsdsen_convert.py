"""`lpsnet convert` for the authors' PMSDSEN checkpoints (liux520/PMSDSEN).

tests/data/pmsdsen_authors.json.gz pins the authors' format and function: the
state-dict keys and shapes of their `PMSDSEN(cls=19)` (commit 3f3278d), and
sampled outputs of their model run once with the deterministic weights of
`authors_state()` below (their code has no licence, so the script that ran it is
not part of this repository).
"""
import functools
import gzip
import json
import os
import subprocess
import sys
import zlib

import numpy as np
import paddle
import pytest

from paddleseg_lpsnet.convert import convert_state, read_source
from paddleseg_lpsnet.convert.pmsdsen import our_module_path
from paddleseg_lpsnet.errors import CheckpointError
from paddleseg_lpsnet.models import PMSDSENet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "data", "pmsdsen_authors.json.gz")
_LEAF = {"weight": "weight", "bias": "bias", "running_mean": "_mean", "running_var": "_variance"}


@functools.lru_cache(maxsize=1)
def load_fixture():
    with gzip.open(FIXTURE, "rt") as f:
        return json.load(f)


def authors_state(keys):
    """Deterministic weights for the authors' keys: every tensor seeded by its name."""
    state = {}
    for key, shape in keys:
        rng = np.random.RandomState(zlib.crc32(key.encode()))
        leaf = key.rsplit(".", 1)[1]
        if leaf == "num_batches_tracked":
            state[key] = np.array(0, dtype="int64")
        elif leaf == "running_mean":
            state[key] = rng.uniform(-0.5, 0.5, shape)
        elif leaf == "running_var":
            state[key] = rng.uniform(0.5, 2.0, shape)
        elif leaf == "bias":
            state[key] = rng.uniform(-0.3, 0.3, shape)
        elif len(shape) == 1:  # BN scale
            state[key] = rng.uniform(0.5, 1.5, shape)
        else:  # conv kernels
            state[key] = rng.normal(0.0, 0.8 / np.sqrt(np.prod(shape[1:])), shape)
        state[key] = state[key].astype("int64" if leaf == "num_batches_tracked" else "float32")
    return state


def fixture_input(spec):
    return np.random.RandomState(spec["input_seed"]).randn(*spec["input_shape"]).astype("float32")


def _converted(state, **kwargs):
    model = PMSDSENet(19, **kwargs)
    new_state, report = convert_state(state, model, source="authors.pth")
    model.set_state_dict(new_state)
    return model, report


def test_every_authors_key_has_a_place_and_every_tensor_is_filled():
    fixture = load_fixture()
    keys = fixture["keys"]
    assert len(keys) == 1898
    _, report = _converted(authors_state(keys))
    assert report.format == "authors-pmsdsen"
    assert report.mapped == 1619 and len(report.dropped) == 279
    assert all(k.endswith("num_batches_tracked") for k in report.dropped)


def _outputs_of_converted_fixture(mode):
    """Outputs of our model with the fixture's weights in `mode` (eval or train), and the spec."""
    fixture = load_fixture()
    model, _ = _converted(authors_state(fixture["keys"]))
    model.train() if mode == "train" else model.eval()
    spec = fixture[mode]
    with paddle.no_grad():
        return model(paddle.to_tensor(fixture_input(spec))), spec


def test_converted_model_reproduces_the_authors_outputs():
    out, spec = _outputs_of_converted_fixture("eval")
    assert len(out) == 1
    logits = out[0].numpy()
    np.testing.assert_allclose(logits.ravel()[spec["indices"]], spec["values"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits.mean(axis=(0, 2, 3)), spec["class_mean"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits.std(axis=(0, 2, 3)), spec["class_std"], rtol=1e-4, atol=1e-5)


def test_converted_model_reproduces_the_authors_training_heads():
    """Train mode (batch statistics): main, aux x4, aux x8 in the authors' order."""
    outs, spec = _outputs_of_converted_fixture("train")
    assert len(outs) == 3
    for out, ref in zip(outs, spec["outputs"]):
        flat = out.numpy().ravel()
        np.testing.assert_allclose(flat[ref["indices"]], ref["values"], rtol=1e-3, atol=1e-3)


def _authors_layout(model, keys):
    """Our model's weights under the authors' keys (the inverse of the converter's table)."""
    own = model.state_dict()
    state = {}
    for key, shape in keys:
        path, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            state[key] = np.array(5, dtype="int64")
            continue
        value = own[f"{our_module_path(path)}.{_LEAF[leaf]}"].numpy()
        assert list(value.shape) == shape, key
        state[key] = value
    return state


def test_round_trip_through_the_authors_layout_is_exact(randomize_bn):
    keys = load_fixture()["keys"]
    src = randomize_bn(PMSDSENet(19))
    model, _ = _converted(_authors_layout(src, keys))
    x = paddle.randn([1, 3, 64, 96])
    src.eval(), model.eval()
    with paddle.no_grad():
        np.testing.assert_array_equal(model(x)[0].numpy(), src(x)[0].numpy())


def test_dataparallel_prefix_is_accepted():
    keys = load_fixture()["keys"]
    state = {f"module.{k}": v for k, v in authors_state(keys).items()}
    _, report = _converted(state)
    assert report.mapped == 1619


def test_extra_authors_tensor_fails_naming_it():
    state = authors_state(load_fixture()["keys"])
    state["seg_head_x16.0.weight"] = np.zeros([19, 8, 1, 1], "float32")
    with pytest.raises(CheckpointError, match=r"1 source tensors unmapped \(seg_head_x16.0.weight\)"):
        _converted(state)


def test_missing_authors_tensor_fails_naming_ours():
    state = authors_state(load_fixture()["keys"])
    del state["layer3.5.MSLRI.conv.2.LRMS.x4.0.bias"]
    with pytest.raises(CheckpointError,
                       match=r"not filled \(layer3.5.mslri.basic2.lrms.branches.3.conv.bias\)"):
        _converted(state)


def test_other_width_fails_with_shapes():
    state = authors_state(load_fixture()["keys"])
    with pytest.raises(CheckpointError, match=r"1580 mis-shaped \(DWFF4.conv_du.0.weight \[8, 64, 1, 1\] -> "
                                              r"fuse4.squeeze.conv.weight \[4, 32, 1, 1\]"):
        _converted(state, base_channels=16)


def test_authors_training_checkpoint_file_reads_and_converts(tmp_path):
    """Their Trainer_seg.py saves epoch, state_dict, optimizer state and a numpy mIoU."""
    torch = pytest.importorskip("torch", reason="torch (the optional extra) is not installed")
    state = authors_state(load_fixture()["keys"])
    path = str(tmp_path / "PMSDSEN_city.pth")
    torch.save({"epoch": 499, "state_dict": {k: torch.from_numpy(v) for k, v in state.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]},
                "pred": np.float64(0.7502)}, path)
    read = read_source(path)
    assert set(read) == set(state)
    _, report = _converted(read)
    assert report.mapped == 1619


def test_cli_converts_authors_checkpoint(tmp_path):
    torch = pytest.importorskip("torch", reason="torch (the optional extra) is not installed")
    fixture = load_fixture()
    state = authors_state(fixture["keys"])
    src, dst = str(tmp_path / "authors.pth"), str(tmp_path / "pmsdsen.pdparams")
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in state.items()}}, src)
    res = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "convert", "--config",
                          "configs/pmsdsen/pmsdsen_cityscapes_stage1.yml", "--src", src, "--dst", dst],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "authors-pmsdsen: mapped 1619 tensors" in res.stdout
    model = PMSDSENet(19)
    model.set_state_dict(paddle.load(dst))
    model.eval()
    spec = fixture["eval"]
    with paddle.no_grad():
        flat = model(paddle.to_tensor(fixture_input(spec)))[0].numpy().ravel()
    np.testing.assert_allclose(flat[spec["indices"]], spec["values"], rtol=1e-4, atol=1e-4)
