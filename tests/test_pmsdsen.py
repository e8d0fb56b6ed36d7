"""PMSDSENet beyond the registry contracts: size, odd sizes, frozen BN, the authors' eval protocol."""
import numpy as np
import paddle
import paddle.nn as nn
import pytest

from paddleseg_lpsnet.models import PMSDSENet
from paddleseg_lpsnet.models.layers import make_activation
from paddleseg_lpsnet.models.pmsdsen import TransposedUp, eca_kernel_size
from paddleseg_lpsnet.utils.flops import count_macs, count_params
from paddleseg_lpsnet.utils.rescaled_inference import predict_rescaled

SMALL = dict(blocks=(1, 1, 1, 1, 1))
# GMACs at 512x1024 (19 classes) as configs/pmsdsen/metafile.yml states them
PUBLISHED_GMACS = {"gmacs_512x1024": 10.20, "gmacs_512x1024_with_transposed": 11.41,
                   "gmacs_512x1024_inference": 10.04}


def _bn_layers(model):
    return [l for l in model.sublayers() if isinstance(l, nn.BatchNorm2D)]


def test_parameters_match_the_authors_count():
    model = PMSDSENet(19)
    # the authors' count: every head, 19 classes, BN affine without the running statistics
    assert count_params(model, trainable_only=True) == 922373
    frozen = PMSDSENet(19, freeze_bn=True)
    bn_affine = sum(2 * l.weight.shape[0] for l in _bn_layers(frozen))
    assert count_params(frozen, trainable_only=True) == 922373 - bn_affine


def test_leakyrelu_activation_is_leaky_relu_and_holds_no_state():
    """DWFF's LeakyReLU(0.2) is a fixed-slope PReLU (exports correctly), with no checkpoint tensor."""
    act = make_activation("leakyrelu")
    x = paddle.randn([2, 3, 5, 7])
    np.testing.assert_array_equal(act(x).numpy(), nn.functional.leaky_relu(x, 0.2).numpy())
    assert act.state_dict() == {} and act.parameters() == []


def test_eca_kernel_sizes():
    assert [eca_kernel_size(c) for c in (16, 32, 64, 128, 256)] == [3, 3, 3, 5, 5]


def _authors_gflops(model, shape):
    """The authors' Metrics/flops_compute.py: Conv2d layers only (not the transposed convs
    nor ECA's Conv1d), 2 FLOPs per multiply-add plus 1 per bias add, reported / 2; their
    forward always runs the auxiliary heads."""
    flops = 0

    def hook(layer, inputs, output):
        nonlocal flops
        macs = int(np.prod(output.shape)) * int(np.prod(layer.weight.shape[1:]))
        flops += 2 * macs + (int(np.prod(output.shape)) if layer.bias is not None else 0)

    hooks = [l.register_forward_post_hook(hook) for l in model.sublayers() if type(l) is nn.Conv2D]
    model.train()
    with paddle.no_grad():
        model(paddle.zeros(shape))
    for h in hooks:
        h.remove()
    return flops / 2 / 1e9


def test_gmacs_at_512x1024_match_the_published_figures():
    model = PMSDSENet(19)
    shape = [1, 3, 512, 1024]
    # the published 10.2 G (convs only) and 11.41 G (with the two transposed convs)
    # count every head, as the authors' forward always runs them
    macs = count_macs(model, shape, train_mode=True)["by_type"]
    assert round(macs["Conv2D"] / 1e9, 2) == PUBLISHED_GMACS["gmacs_512x1024"] == 10.20
    assert round((macs["Conv2D"] + macs["Conv2DTranspose"]) / 1e9, 2) == 11.41
    assert PUBLISHED_GMACS["gmacs_512x1024_with_transposed"] == 11.41
    assert macs["Conv2DTranspose"] == 2 * 603979776  # 128->64 at 64x128, 64->32 at 128x256, k3
    # what their script printed (bias adds as half a MAC): 10.2669418
    assert round(_authors_gflops(model, shape), 7) == 10.2669418
    # inference (eval: main head only) costs 10.04 G, 11.25 G with the transposed convs
    macs = count_macs(model, shape)["by_type"]
    assert round(macs["Conv2D"] / 1e9, 2) == PUBLISHED_GMACS["gmacs_512x1024_inference"] == 10.04
    assert round((macs["Conv2D"] + macs["Conv2DTranspose"]) / 1e9, 2) == 11.25


@pytest.mark.parametrize("skip_size", [(13, 21), (14, 22)])
def test_upsampling_crop_equals_the_transposed_conv_sized_to_the_skip(skip_size):
    """At an odd skip size the block gives what output_padding 0 would; at even, output_padding 1."""
    up = TransposedUp(8, 4)
    up.eval()
    x = paddle.randn([1, 8, 7, 11])
    skip = paddle.zeros([1, 4, *skip_size])
    with paddle.no_grad():
        out = up(x, skip)
        pad = [s - 2 * i + 1 for s, i in zip(skip_size, (7, 11))]  # 0 for odd, 1 for even
        ref = nn.functional.conv2d_transpose(x, up.conv.weight, up.conv.bias, stride=2, padding=1,
                                             output_padding=pad)
        ref = up.act(up.bn(ref))
    assert list(out.shape) == [1, 4, *skip_size]
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)


def test_training_returns_main_and_two_aux_at_input_size_eval_main_only():
    model = PMSDSENet(7, **SMALL)
    x = paddle.randn([2, 3, 75, 101])
    model.train()
    outs = model(x)
    assert [list(o.shape) for o in outs] == [[2, 7, 75, 101]] * 3
    model.eval()
    with paddle.no_grad():
        out = model(x)
    assert len(out) == 1


def _bn_state(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items() if ".bn." in k}


def _frozen_model(randomize_bn, shape):
    """A small PMSDSENet with freeze_bn and random BN, an input, and its eval logits."""
    model = randomize_bn(PMSDSENet(5, freeze_bn=True, **SMALL))
    x = paddle.randn(shape)
    model.eval()
    with paddle.no_grad():
        return model, x, model(x)[0].numpy()


def test_frozen_bn_survives_train_and_is_frozen_in_every_way(randomize_bn):
    model, x, ref = _frozen_model(randomize_bn, [2, 3, 64, 96])
    before = _bn_state(model)
    model.train()  # what PaddleSeg's loop calls before training and after each evaluation
    assert model.training
    outs = model(x)
    # BN used its running statistics: the main logits equal the eval ones
    np.testing.assert_allclose(outs[0].numpy(), ref, rtol=1e-5, atol=1e-5)
    sum(o.mean() for o in outs).backward()
    after = _bn_state(model)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)  # statistics and affine
    for bn in _bn_layers(model):
        assert bn.weight.stop_gradient and bn.bias.stop_gradient and bn.weight.grad is None
    others = [p for p in model.parameters() if not p.stop_gradient]
    assert others and all(p.grad is not None for p in others)


def test_frozen_bn_stays_frozen_when_only_a_wrapper_is_put_in_training_mode(randomize_bn):
    model, x, ref = _frozen_model(randomize_bn, [2, 3, 48, 64])
    wrapper = nn.LayerList([model])
    wrapper.train()  # sets `training` on every sublayer without calling model.train()
    with paddle.no_grad():
        out = model(x)[0].numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_unfrozen_bn_trains(randomize_bn):
    model = randomize_bn(PMSDSENet(5, **SMALL))
    before = _bn_state(model)
    model.train()
    model(paddle.randn([2, 3, 48, 64]))
    changed = [k for k, v in _bn_state(model).items() if not np.array_equal(v, before[k])]
    assert any(k.endswith("_mean") for k in changed), "running statistics update without freeze_bn"


def test_bad_architecture_is_refused_with_the_value():
    with pytest.raises(ValueError, match="multiple of 8.*got 12"):
        PMSDSENet(19, base_channels=12)
    with pytest.raises(ValueError, match=r"5 counts >= 1.*\[1, 2, 6, 2\]"):
        PMSDSENet(19, blocks=(1, 2, 6, 2))


def test_predict_rescaled_follows_the_authors_protocol():
    """Resize x0.5 (align_corners=True), predict, resize back: as torch's F.interpolate with
    scale_factor 0.5 and 2 in the authors' Demo/eval.py."""
    torch = pytest.importorskip("torch", reason="torch (the optional extra) is not installed")
    conv = nn.Conv2D(3, 4, 3, padding=1)
    model = lambda x: [conv(x)]  # noqa: E731  (any callable returning [logits])
    image = np.random.RandomState(0).randn(1, 3, 64, 96).astype("float32")
    with paddle.no_grad():
        out = predict_rescaled(model, paddle.to_tensor(image), 0.5).numpy()
    tconv = torch.nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(conv.weight.numpy()))
        tconv.bias.copy_(torch.from_numpy(conv.bias.numpy()))
        t = torch.nn.functional.interpolate(torch.from_numpy(image), scale_factor=0.5, mode="bilinear",
                                            align_corners=True)
        ref = torch.nn.functional.interpolate(tconv(t), scale_factor=2, mode="bilinear", align_corners=True)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_predict_rescaled_returns_the_image_size_at_odd_sizes():
    model = PMSDSENet(3, **SMALL)
    model.eval()
    with paddle.no_grad():
        out = predict_rescaled(model, paddle.randn([1, 3, 101, 67]), 0.5)
    assert list(out.shape) == [1, 3, 101, 67]
