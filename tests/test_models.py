"""Registry-driven model tests (in the spirit of timm's tests/test_models.py).

Every segmentation model, backbone and head this project registers is built from
tests/specs.py and checked for the contracts PaddleSeg and our tools rely on.
"""
import os

import numpy as np
import paddle
import pytest

from paddleseg_lpsnet.models import to_deploy
from paddleseg_lpsnet.models.deploy import count_unfolded_bn
from specs import BACKBONES, HEADS, NUM_CLASSES, SEG_MODELS
from specs import param_names as _names

ODD_SIZES = [(1, 250, 500), (2, 97, 131), (1, 33, 47)]


def _param_names_without_grad(model):
    return [p.name for p in model.parameters() if not p.stop_gradient and p.grad is None]


@pytest.mark.parametrize("name", _names(SEG_MODELS))
@pytest.mark.parametrize("batch,h,w", ODD_SIZES)
def test_seg_model_eval_forward_odd_sizes(name, batch, h, w):
    model = SEG_MODELS[name](NUM_CLASSES)
    model.eval()
    with paddle.no_grad():
        out = model(paddle.randn([batch, 3, h, w]))
    assert isinstance(out, list) and len(out) == 1, "eval returns [main logits]"
    assert list(out[0].shape) == [batch, NUM_CLASSES, h, w]
    assert np.isfinite(out[0].numpy()).all()


@pytest.mark.parametrize("name", _names(SEG_MODELS))
def test_seg_model_backward_reaches_every_parameter(name):
    model = SEG_MODELS[name](NUM_CLASSES)
    model.train()
    outs = model(paddle.randn([2, 3, 97, 131]))
    for o in outs:
        assert list(o.shape) == [2, NUM_CLASSES, 97, 131], "training outputs are at input size"
    loss = sum((o * paddle.randn(o.shape)).mean() for o in outs)
    loss.backward()
    assert _param_names_without_grad(model) == []
    for p in model.parameters():
        if not p.stop_gradient:
            assert np.isfinite(p.grad.numpy()).all(), p.name


@pytest.mark.parametrize("name", _names(SEG_MODELS))
@pytest.mark.parametrize("in_channels", [1, 3, 4])
def test_seg_model_in_channels(name, in_channels):
    model = SEG_MODELS[name](NUM_CLASSES, in_channels=in_channels)
    model.eval()
    with paddle.no_grad():
        out = model(paddle.randn([1, in_channels, 64, 96]))
    assert list(out[0].shape) == [1, NUM_CLASSES, 64, 96]


@pytest.mark.parametrize("name", _names(SEG_MODELS))
def test_deploy_form_equals_train_form(name, randomize_bn):
    model = randomize_bn(SEG_MODELS[name](NUM_CLASSES))
    model.eval()
    x = paddle.randn([1, 3, 121, 187])
    with paddle.no_grad():
        ref = model(x)[0].numpy()
        deploy = to_deploy(model)
        out = deploy(x)[0].numpy()
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    assert count_unfolded_bn(deploy) < count_unfolded_bn(model), "deploy form folds BN"
    # the train-form model is untouched
    with paddle.no_grad():
        np.testing.assert_array_equal(model(x)[0].numpy(), ref)


@pytest.mark.parametrize("name", _names(SEG_MODELS))
def test_jit_save_load_roundtrip_two_shapes(name, tmp_path):
    model = to_deploy(SEG_MODELS[name](NUM_CLASSES))
    inputs = [paddle.randn(shape) for shape in ([1, 3, 128, 256], [2, 3, 97, 161])]
    # references from the dygraph model: to_static converts the layer in place (and
    # calling the converted layer would trace a new program for each shape)
    with paddle.no_grad():
        refs = [model(x)[0].numpy() for x in inputs]
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", name="x")]
    prefix = os.path.join(str(tmp_path), "model")
    paddle.jit.save(paddle.jit.to_static(model, input_spec=spec, full_graph=True), prefix)
    loaded = paddle.jit.load(prefix)
    loaded.eval()
    for x, ref in zip(inputs, refs):
        with paddle.no_grad():
            out = loaded(x)
        out = out[0] if isinstance(out, (list, tuple)) else out
        assert list(out.shape) == list(ref.shape)
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", _names(BACKBONES))
@pytest.mark.parametrize("in_channels", [1, 3, 4])
def test_backbone_features_match_feat_channels(name, in_channels):
    backbone = BACKBONES[name](in_channels=in_channels)
    backbone.eval()
    with paddle.no_grad():
        feats = backbone(paddle.randn([1, in_channels, 97, 131]))
    assert len(feats) == len(backbone.feat_channels)
    for f, c in zip(feats, backbone.feat_channels):
        assert f.shape[1] == c


@pytest.mark.parametrize("name", _names(HEADS))
def test_head_forward_backward(name):
    build, inputs = HEADS[name]
    head = build()
    feats = inputs(2)
    out = head(feats)
    assert out.shape[0] == 2 and out.shape[1] == NUM_CLASSES
    assert list(out.shape[2:]) == list(feats[0].shape[2:]), "logits at the first input's size"
    out.mean().backward()
    assert _param_names_without_grad(head) == []
