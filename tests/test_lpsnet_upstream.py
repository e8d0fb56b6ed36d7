"""Our LPSNetSeg computes exactly PaddleSeg's `LPSNet` given converted weights."""
import numpy as np
import paddle
import pytest
from paddleseg.models import LPSNet

from paddleseg_lpsnet.convert import convert_state
from paddleseg_lpsnet.models import LPSNetSeg
from paddleseg_lpsnet.models.backbones import LPSNET_ARCHS, LPSNetBackbone

SIZES = [(1, 250, 500), (1, 256, 512), (2, 97, 161)]


def _pair(variant, randomize_bn):
    arch = LPSNET_ARCHS[variant]
    upstream = randomize_bn(LPSNet(depths=list(arch["depths"]), channels=list(arch["channels"]),
                                   scale_ratios=list(arch["scale_ratios"]), num_classes=19))
    ours = LPSNetSeg(19, LPSNetBackbone(**arch))
    state = {k: v.numpy() for k, v in upstream.state_dict().items()}
    new_state, report = convert_state(state, ours, source="upstream")
    assert report.format == "paddleseg-lpsnet"
    assert report.mapped == len(state) == len(ours.state_dict())
    ours.set_state_dict(new_state)
    upstream.eval()
    ours.eval()
    return upstream, ours


@pytest.mark.parametrize("variant", ["S", "M", "L"])
def test_eval_logits_equal_upstream(variant, randomize_bn):
    upstream, ours = _pair(variant, randomize_bn)
    for batch, h, w in SIZES:
        x = paddle.randn([batch, 3, h, w])
        with paddle.no_grad():
            ref = upstream(x)[0].numpy()
            out = ours(x)[0].numpy()
        assert out.shape == ref.shape == (batch, 19, h, w)
        assert np.abs(out - ref).max() <= 1e-4, (variant, h, w)


def test_upstream_crashes_with_one_path_ours_does_not():
    """PaddleSeg's port fails with a single path; ours is the authors' 1-path net."""
    x = paddle.randn([1, 3, 64, 64])
    upstream = LPSNet(depths=[1, 1, 1, 1, 1], channels=[4, 8, 16, 32, 32], scale_ratios=[0.5], num_classes=3)
    with pytest.raises(Exception):
        upstream(x)
    ours = LPSNetSeg(3, LPSNetBackbone([1, 1, 1, 1, 1], [4, 8, 16, 32, 32], [0.5, 0, 0]))
    assert list(ours(x)[0].shape) == [1, 3, 64, 64]
