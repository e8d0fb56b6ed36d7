"""`lpsnet convert` for FasterSeg: the authors' checkpoint layout maps exactly, or fails loudly."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest

from paddleseg_lpsnet.convert import convert_state
from paddleseg_lpsnet.errors import CheckpointError
from paddleseg_lpsnet.models import FasterSegNet, FasterSegStudent
from specs import FASTERSEG_TINY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LEAF = {"_mean": "running_mean", "_variance": "running_var"}
_HEADS = {"head": "heads8", "aux_head16": "heads16", "aux_head32": "heads32"}


def _their_names(key, n_shared):
    """The authors' key(s) for one of ours, from the naming of their model_seg.py / seg_oprs.py."""
    prefix, leaf = key.rsplit(".", 1)
    leaf = _LEAF.get(leaf, leaf)
    part = lambda kind, j: f"{kind}{int(j) + 1}"  # noqa: E731  convs.0.conv -> conv1, convs.1.bn -> bn2
    rules = [
        (r"stem\.0\.(conv|bn)", lambda m: [f"stem.0.conv.{0 if m[1] == 'conv' else 1}"]),
        (r"stem\.(\d)\.convs\.(\d)\.(conv|bn)", lambda m: [f"stem.{m[1]}.{part(m[3], m[2])}"]),
        (r"shared\.(\d+)\.convs\.(\d)\.(conv|bn)",
         lambda m: [f"cells.{m[1]}-{b}._op._op.{part(m[3], m[2])}" for b in (0, 1)]),
        (r"branch(32|16)\.cells\.(\d+)\.convs\.(\d)\.(conv|bn)",
         lambda m: [f"cells.{n_shared + int(m[2])}-{0 if m[1] == '32' else 1}._op._op.{part(m[4], m[3])}"]),
        (r"fusion32\.(reduce|refine)\.(\d)\.(conv|bn)",
         lambda m: [f"{'arms32' if m[1] == 'reduce' else 'refines32'}.{m[2]}.conv.{0 if m[3] == 'conv' else 1}"]),
        (r"fusion16\.(reduce|refine)\.0\.(conv|bn)",
         lambda m: [f"{'arms16' if m[1] == 'reduce' else 'refines16'}.conv.{0 if m[2] == 'conv' else 1}"]),
        (r"fuse\.(conv|bn)", lambda m: [f"ffm.conv_1x1.{m[1]}"]),
        (r"(head|aux_head16|aux_head32)\.conv\.(conv|bn)", lambda m: [f"{_HEADS[m[1]]}.conv_3x3.{m[2]}"]),
        (r"(head|aux_head16|aux_head32)\.classifier", lambda m: [f"{_HEADS[m[1]]}.conv_1x1"]),
    ]
    for pattern, names in rules:
        m = re.fullmatch(pattern, prefix)
        if m:
            return [f"{name}.{leaf}" for name in names(m)]
    raise AssertionError(f"no authors' name for {key}")


def _authors_state(model, aux_heads=True):
    """`model`'s weights as the authors' train.py saves them (torch state_dict keys)."""
    state = {}
    for key, value in model.state_dict().items():
        if not aux_heads and key.startswith("aux_head"):
            continue
        for name in _their_names(key, len(model.shared)):
            state[name] = value.numpy()
            if name.endswith(".running_mean"):
                state[name.replace("running_mean", "num_batches_tracked")] = np.array(5, "int64")
    width = model.fuse.conv.weight.shape[0]
    for i in (1, 2):  # their unused FeatureFusion channel attention
        state[f"ffm.channel_attention.{i}.conv.weight"] = np.ones([width, width, 1, 1], "float32")
    return state


def _outputs(model, x, train=False):
    model.train() if train else model.eval()
    if train:  # BN on running statistics, so both models compute the same function
        for layer in model.sublayers():
            if isinstance(layer, paddle.nn.BatchNorm2D):
                layer.eval()
    with paddle.no_grad():
        return [o.numpy() for o in model(x)]


def test_our_translation_names_what_the_authors_code_saves():
    with open(os.path.join(ROOT, "tests", "data", "fasterseg_authors_student.json")) as f:
        recorded = json.load(f)["keys"]  # written by the authors' own network
    state = _authors_state(FasterSegStudent(19))
    assert {k: list(v.shape) for k, v in state.items()} == recorded


@pytest.mark.parametrize("prefix", ["", "module."], ids=["plain", "dataparallel"])
def test_authors_checkpoint_round_trip_gives_identical_outputs(prefix, randomize_bn):
    source = randomize_bn(FasterSegStudent(19))
    state = {prefix + k: v for k, v in _authors_state(source).items()}
    target = FasterSegStudent(19)
    new_state, report = convert_state(state, target, source="weights1.pt")
    assert report.format == "authors-fasterseg" and report.fresh == []
    n_bn = sum(isinstance(l, paddle.nn.BatchNorm2D) for l in source.sublayers())
    shared_copies = len([k for k in state if re.match(rf"{prefix}cells\.[0-2]-1\.", k)])
    assert len(report.dropped) == n_bn + 2 + shared_copies
    assert report.mapped == len(source.state_dict())
    target.set_state_dict(new_state)
    x = paddle.randn([1, 3, 96, 160])
    for train in (False, True):
        for ours, ref in zip(_outputs(target, x, train), _outputs(source, x, train)):
            np.testing.assert_array_equal(ours, ref)


def test_checkpoint_without_training_heads_leaves_them_fresh(randomize_bn):
    source = randomize_bn(FasterSegStudent(19))
    target = FasterSegStudent(19)
    aux_before = target.aux_head32.classifier.weight.numpy().copy()
    new_state, report = convert_state(_authors_state(source, aux_heads=False), target)
    assert {k.split(".")[0] for k in report.fresh} == {"aux_head16", "aux_head32"}
    assert "left at initial values" in report.summary()
    target.set_state_dict(new_state)
    np.testing.assert_array_equal(target.aux_head32.classifier.weight.numpy(), aux_before)
    x = paddle.randn([1, 3, 64, 96])
    np.testing.assert_array_equal(_outputs(target, x)[0], _outputs(source, x)[0])


def test_differing_copies_of_a_shared_cell_fail_loudly():
    state = _authors_state(FasterSegStudent(19))
    state["cells.1-1._op._op.conv2.weight"] = state["cells.1-1._op._op.conv2.weight"] + 1
    with pytest.raises(CheckpointError, match=r"cells.1-1._op._op.conv2.weight and cells.1-0.* differ"):
        convert_state(state, FasterSegStudent(19), source="weights1.pt")


def test_missing_and_extra_tensors_fail_loudly():
    state = _authors_state(FasterSegStudent(19))
    del state["arms32.1.conv.1.running_var"]
    state["heads4.conv_1x1.weight"] = np.zeros([19, 8, 1, 1], "float32")
    with pytest.raises(CheckpointError, match=r"unmapped \(heads4.conv_1x1.weight\).*"
                                              r"not filled \(fusion32.reduce.1.bn._variance\)"):
        convert_state(state, FasterSegStudent(19), source="weights1.pt")


def test_checkpoint_of_another_architecture_fails_with_shapes():
    state = _authors_state(FasterSegStudent(19))
    with pytest.raises(CheckpointError, match=r"mis-shaped \(stem.0.conv.0.weight \[32, 3, 3, 3\] -> "
                                              r"stem.0.conv.weight \[4, 3, 3, 3\]"):
        convert_state(state, FasterSegNet(19, FASTERSEG_TINY), source="weights1.pt")


def test_cli_converts_a_torch_checkpoint(tmp_path, randomize_bn):
    torch = pytest.importorskip("torch", reason="torch (the optional extra) is not installed")
    source = randomize_bn(FasterSegStudent(19))
    src, dst = str(tmp_path / "weights1.pt"), str(tmp_path / "fasterseg_student.pdparams")
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in _authors_state(source).items()}, src)
    res = subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", "convert", "--config",
                          "configs/fasterseg/fasterseg_student.yml", "--src", src, "--dst", dst],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert f"authors-fasterseg: mapped {len(source.state_dict())} tensors" in res.stdout
    model = FasterSegStudent(19, pretrained=dst)  # strict load
    x = paddle.randn([1, 3, 64, 128])
    np.testing.assert_array_equal(_outputs(model, x)[0], _outputs(source, x)[0])
