"""FasterSeg: sizes against the paper, the authors' own outputs, any input size, arch checks."""
import json
import os

import numpy as np
import paddle
import pytest
import yaml

from fasterseg_golden import summarise, synthetic_input, synthetic_state
from paddleseg_lpsnet.convert import convert_state
from paddleseg_lpsnet.errors import ConfigError
from paddleseg_lpsnet.models import FasterSegNet, FasterSegStudent
from paddleseg_lpsnet.models.fasterseg import FASTERSEG_ARCHS, fasterseg_arch
from paddleseg_lpsnet.utils.config import build_model, load_config
from paddleseg_lpsnet.utils.flops import count_macs, count_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
# Parameters as torch counts them (weights, biases, BN affine; no running statistics).
INFERENCE_PARAMS = {"student": 3421875, "teacher": 22115203}  # the authors' decoded networks
AUX_PARAMS = {"student": 931046, "teacher": 1335206}  # heads16 + heads32
# Weights of the authors' FeatureFusion channel attention, built but never run.
UNUSED_AUTHOR_PARAMS = {"student": 32768, "teacher": 73728}
GMACS_1024x2048 = {"student": 27.8, "teacher": 107.8}


def _params(model):
    return count_params(model, trainable_only=True)


def _aux_params(model):
    return _params(model.aux_head16) + _params(model.aux_head32)


@pytest.mark.parametrize("arch", ["student", "teacher"])
def test_parameters_match_the_authors_networks(arch):
    model = FasterSegNet(19, arch)
    assert _params(model) - _aux_params(model) == INFERENCE_PARAMS[arch]
    assert _aux_params(model) == AUX_PARAMS[arch]
    # the paper's "with training heads" (4.39M, 23.52M) counts the unused weights too
    published = {"student": 4.39e6, "teacher": 23.52e6}[arch]
    assert round((_params(model) + UNUSED_AUTHOR_PARAMS[arch]) / 1e4) == published / 1e4


@pytest.mark.parametrize("arch,shape,factor", [("student", [1, 3, 256, 512], 16),
                                               ("teacher", [1, 3, 128, 256], 64)])
def test_gmacs_at_1024x2048(arch, shape, factor):
    # Every feature map down to the zoomed 1/64 has exactly 1/factor of its area at
    # 1024x2048, so the MACs scale exactly (the slow test checks at full size).
    macs = count_macs(FasterSegNet(19, arch), shape)
    assert set(macs["by_type"]) == {"Conv2D"}
    assert round(macs["total"] * factor / 1e9, 1) == GMACS_1024x2048[arch]


@pytest.mark.slow
@pytest.mark.parametrize("arch,shape,factor", [("student", [1, 3, 256, 512], 16),
                                               ("teacher", [1, 3, 128, 256], 64)])
def test_gmacs_at_full_size(arch, shape, factor):
    model = FasterSegNet(19, arch)
    full = count_macs(model, [1, 3, 1024, 2048])["total"]
    assert full == factor * count_macs(model, shape)["total"]
    assert round(full / 1e9, 1) == GMACS_1024x2048[arch]


def _golden(arch):
    with open(os.path.join(DATA, f"fasterseg_authors_{arch}.json")) as f:
        return json.load(f)


def _assert_close(ours, ref, what):
    for key in ("sample", "class_mean"):
        a, b = np.array(ours[key]), np.array(ref[key])
        assert a.shape == b.shape, what
        err = np.abs(a - b).max()
        assert err <= 1e-4 * max(1.0, np.abs(b).max()), f"{what} {key}: max error {err}"


@pytest.mark.parametrize("arch", ["student", "teacher"])
def test_outputs_equal_the_authors_network(arch):
    """Converted from the authors' layout, our network computes what theirs computed.

    tests/data/fasterseg_authors_<arch>.json was written by tests/data/make_fasterseg_golden.py
    running the authors' code on synthetic weights: eval logits, and the three
    training outputs (BN on running statistics).
    """
    golden = _golden(arch)
    model = FasterSegNet(19, arch)
    state, report = convert_state(synthetic_state(golden["keys"], golden["aliases"]), model)
    assert report.format == "authors-fasterseg" and report.fresh == []
    model.set_state_dict(state)
    x = paddle.to_tensor(synthetic_input())
    model.eval()
    with paddle.no_grad():
        _assert_close(summarise(model(x)[0].numpy()), golden["outputs"]["eval"][0], "eval")
        model.train()
        for layer in model.sublayers():
            if isinstance(layer, paddle.nn.BatchNorm2D):
                layer.eval()
        outs = model(x)
    assert len(outs) == 3
    for name, ours, ref in zip(("main", "aux16", "aux32"), outs, golden["outputs"]["train"]):
        _assert_close(summarise(ours.numpy()), ref, f"train {name}")


def test_any_input_size_in_training_including_a16_b16_mismatch():
    # 1/8 is 13x17: branch32 reaches 1/16 through a zoomed cell (6x8), branch16
    # through a strided conv (7x9); the authors' concat of the two fails here.
    model = FasterSegStudent(5)
    model.train()
    outs = model(paddle.randn([1, 3, 97, 131]))
    assert [list(o.shape) for o in outs] == [[1, 5, 97, 131]] * 3


@pytest.mark.parametrize("h,w", [(1, 1), (7, 5), (40, 24)])
def test_tiny_inputs_keep_at_least_one_pixel(h, w):
    model = FasterSegStudent(3)
    model.eval()
    with paddle.no_grad():
        out = model(paddle.randn([1, 3, h, w]))[0]
    assert list(out.shape) == [1, 3, h, w] and np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("change,message", [
    (dict(shared=(("conv_3x", 32),)), r"unknown op 'conv_3x'"),
    (dict(branch16=(("conv_2x", 64, 2), ("conv_2x", 64, 2), ("conv_2x", 128))), r"branch16 1.*'branch16': 2"),
    (dict(head_channels=(64, 96, 256)), r"branch16 must end .* head_channels\[1\] = 96"),
    (dict(stem=(32, 64)), r"3 widths"),
    (dict(shared=(("conv", 32, 3),)), r"stride must be 1 or 2"),
])
def test_bad_arch_is_named(change, message):
    arch = dict(FASTERSEG_ARCHS["student"], **change)
    with pytest.raises(ValueError, match=message):
        FasterSegNet(19, arch)


def test_unknown_arch_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'pupil'.*student, teacher"):
        FasterSegNet(19, "pupil")


def test_bad_arch_in_a_config_is_a_config_error(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(f"_base_: {ROOT}/configs/fasterseg/fasterseg_student.yml\n"
                    "model: {type: FasterSegNet, arch: {stem: [1, 2, 3]}}\n")
    with pytest.raises(ConfigError, match=r"exactly the keys"):
        build_model(load_config(str(path)))


def test_metafile_matches_models():
    with open(os.path.join(ROOT, "configs", "fasterseg", "metafile.yml")) as f:
        meta = yaml.safe_load(f)
    names = set()
    for entry in meta["Models"]:
        arch = entry["Name"].split("_")[-1]
        names.add(arch)
        cfg = load_config(os.path.join(ROOT, entry["Config"]))
        model = build_model(cfg)
        assert model.arch == fasterseg_arch(arch)
        assert entry["Metadata"]["params"] == INFERENCE_PARAMS[arch]
        assert entry["Metadata"]["gmacs_1024x2048"] == GMACS_1024x2048[arch]
    assert names == {"student", "teacher"}
