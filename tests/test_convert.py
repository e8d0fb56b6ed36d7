"""`lpsnet convert` and the checkpoint formats of the LPS-Net family."""
import os
import re
import subprocess
import sys

import numpy as np
import paddle
import pytest
from paddleseg.models import LPSNet

from paddleseg_lpsnet.convert import convert_state, read_source
from paddleseg_lpsnet.errors import CheckpointError
from paddleseg_lpsnet.models import LPSNetSeg, to_deploy
from paddleseg_lpsnet.models.backbones import LPSNET_ARCHS, LPSNetBackbone, LPSNetBackbone_S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUTHOR_NAMES = {1: ["net"], 2: ["netH", "netL"], 3: ["net1", "net2", "net3"]}


def _lpsnet(variant="S", num_classes=19):
    return LPSNetSeg(num_classes, LPSNetBackbone(**LPSNET_ARCHS[variant]))


def _authors_state(model, deploy=False):
    """The authors' lpsnet.py layout of `model`'s weights (train or deploy form)."""
    src = to_deploy(model) if deploy else model
    names = AUTHOR_NAMES[model.backbone.num_paths]
    state = {}
    for key, value in src.state_dict().items():
        m = re.match(r"backbone\.paths\.(\d+)\.stages\.(\d+)\.(\d+)\.(conv|bn)\.(\w+)", key)
        if m:
            p, s, b, part, leaf = m.groups()
            base = f"{names[int(p)]}.stages.{s}.{b}"
            if part == "conv":
                state[f"{base}.0.{leaf}"] = value.numpy()
            else:
                torch_leaf = {"weight": "weight", "bias": "bias", "_mean": "running_mean",
                              "_variance": "running_var"}[leaf]
                state[f"{base}.1.{torch_leaf}"] = value.numpy()
                if leaf == "weight":
                    state[f"{base}.1.num_batches_tracked"] = np.array(7, dtype="int64")
        else:
            state[key.replace("head.classifier.", "head.")] = value.numpy()
    return state


def _outputs(model, x):
    model.eval()
    with paddle.no_grad():
        return model(x)[0].numpy()


@pytest.mark.parametrize("deploy", [False, True], ids=["train-form", "deploy-form"])
@pytest.mark.parametrize("ratios", [(0.5,), (0.75, 0.25), (1.0, 0.5, 0.25)], ids=["1path", "2paths", "3paths"])
def test_authors_layout_maps_exactly(deploy, ratios, randomize_bn):
    arch = dict(depths=(1, 2, 1, 2, 1), channels=(4, 8, 16, 16, 16), scale_ratios=ratios)
    src_model = randomize_bn(LPSNetSeg(7, LPSNetBackbone(**arch)))
    state = _authors_state(src_model, deploy=deploy)
    target = LPSNetSeg(7, LPSNetBackbone(**arch))
    new_state, report = convert_state(state, target, source="authors.pth")
    assert report.format == "authors-lpsnet"
    target.set_state_dict(new_state)
    x = paddle.randn([1, 3, 96, 160])
    np.testing.assert_allclose(_outputs(target, x), _outputs(src_model, x), rtol=1e-4, atol=1e-4)


def test_classifier_checkpoint_fills_backbone_and_leaves_head(randomize_bn):
    classifier = randomize_bn(LPSNetBackbone_S(class_num=10))
    state = {k: v.numpy() for k, v in classifier.state_dict().items()}
    model = _lpsnet("S")
    head_before = model.head.classifier.weight.numpy().copy()
    new_state, report = convert_state(state, model, source="imagenet.pdparams")
    assert report.format == "lpsnet-imagenet"
    assert report.dropped == ["fc.bias", "fc.weight"]
    assert report.fresh == ["head.classifier.bias", "head.classifier.weight"]
    model.set_state_dict(new_state)
    for key, value in classifier.state_dict().items():
        if not key.startswith("fc."):
            np.testing.assert_array_equal(model.backbone.state_dict()[key].numpy(), value.numpy())
    np.testing.assert_array_equal(model.head.classifier.weight.numpy(), head_before)


def test_extra_source_tensor_fails_loudly():
    state = {k: v.numpy() for k, v in LPSNet([1, 3, 3, 10, 10], [8, 24, 48, 96, 96], [0.75, 0.25], 19).state_dict().items()}
    state["aux_head.weight"] = np.zeros([3, 3], "float32")
    with pytest.raises(CheckpointError, match=r"unmapped \(aux_head.weight\)"):
        convert_state(state, _lpsnet("S"), source="x.pdparams")


def test_wrong_variant_fails_with_shapes():
    upstream_m = LPSNet([1, 3, 3, 10, 10], [8, 24, 48, 96, 96], [1, 0.25], 19)
    state = {k: v.numpy() for k, v in upstream_m.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"mis-shaped .*\[24, 8, 3, 3\] -> .*\[24, 8, 3, 3\]|mis-shaped"):
        convert_state(state, _lpsnet("L"), source="m.pdparams")


def test_missing_tensor_fails_loudly():
    state = {k: v.numpy() for k, v in LPSNet([1, 3, 3, 10, 10], [8, 24, 48, 96, 96], [0.75, 0.25], 19).state_dict().items()}
    del state["nets.1.4.9._batch_norm._variance"]
    with pytest.raises(CheckpointError, match=r"not filled \(backbone.paths.1.stages.4.9.bn._variance\)"):
        convert_state(state, _lpsnet("S"), source="x.pdparams")


def test_unknown_layout_names_keys_and_formats():
    with pytest.raises(CheckpointError, match=r"layout not recognised.*encoder.conv.weight.*paddleseg-lpsnet"):
        convert_state({"encoder.conv.weight": np.zeros([1])}, _lpsnet("S"), source="foreign.pdparams")


def test_pth_without_torch_says_how_to_install(tmp_path, monkeypatch):
    path = tmp_path / "lpsnet_s.pth"
    path.write_bytes(b"not really")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(CheckpointError, match=r"needs torch.*pip install"):
        read_source(str(path))


def test_pth_read_with_weights_only(tmp_path):
    torch = pytest.importorskip("torch", reason="torch (the optional extra) is not installed")
    model = _lpsnet("S")
    state = _authors_state(model)
    path = str(tmp_path / "lpsnet_s.pth")
    torch.save({"state_dict": {k: torch.from_numpy(np.array(v)) for k, v in state.items()}}, path)
    read = read_source(path)
    assert set(read) == set(state)
    new_state, report = convert_state(read, _lpsnet("S"), source=path)
    assert report.format == "authors-lpsnet"


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "paddleseg_lpsnet", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_cli_converts_paddleseg_checkpoint(tmp_path, randomize_bn):
    upstream = randomize_bn(LPSNet([1, 3, 3, 10, 10], [8, 24, 48, 96, 96], [0.75, 0.25], 19))
    src, dst = str(tmp_path / "model.pdparams"), str(tmp_path / "ours.pdparams")
    paddle.save(upstream.state_dict(), src)
    res = _run_cli("convert", "--config", "configs/lpsnet/lpsnet_s.yml", "--src", src, "--dst", dst)
    assert res.returncode == 0, res.stderr
    assert "paddleseg-lpsnet: mapped 272 tensors" in res.stdout
    model = _lpsnet("S")
    model.set_state_dict(paddle.load(dst))
    x = paddle.randn([1, 3, 128, 256])
    upstream.eval()
    np.testing.assert_allclose(_outputs(model, x), _outputs(upstream, x), atol=1e-5)
    # an existing --dst is never overwritten silently
    res = _run_cli("convert", "--config", "configs/lpsnet/lpsnet_s.yml", "--src", src, "--dst", dst)
    assert res.returncode == 2 and "exists; pass --force" in res.stderr


def test_cli_reports_missing_source_in_one_line(tmp_path):
    res = _run_cli("convert", "--config", "configs/lpsnet/lpsnet_s.yml", "--src",
                   str(tmp_path / "nope.pdparams"), "--dst", str(tmp_path / "o.pdparams"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("lpsnet convert: error: Source checkpoint")
    assert "nope.pdparams" in res.stderr and "Traceback" not in res.stderr
