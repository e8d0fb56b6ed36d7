"""identity_init: the shape-preserving convs start as the identity (plus small noise)."""
import numpy as np
import paddle

from paddleseg_lpsnet.models.backbones import LPSNET_TINY, LPSNetBackbone, LPSNetBackbone_S


def _shape_preserving(backbone):
    return [b.conv for p in backbone.paths for s in p.stages for b in s
            if b.conv._stride == [1, 1] and b.conv._in_channels == b.conv._out_channels]


def test_identity_init_makes_same_shape_convs_near_identity():
    backbone = LPSNetBackbone_S(identity_init=True)
    convs = _shape_preserving(backbone)
    assert len(convs) == 2 * (2 + 2 + 9 + 10)  # two paths; stages 2-5 minus their first blocks
    x = paddle.randn([1, 96, 9, 11])
    conv = convs[-1]
    with paddle.no_grad():
        y = paddle.nn.functional.conv2d(x, conv.weight, padding=1)
    assert np.abs(y.numpy() - x.numpy()).mean() < 0.3 * np.abs(x.numpy()).mean()


def test_default_init_is_not_identity():
    conv = _shape_preserving(LPSNetBackbone_S())[-1]
    w = conv.weight.numpy()
    assert abs(np.diagonal(w[:, :, 1, 1]).mean()) < 0.2


def test_identity_init_leaves_strided_and_widening_convs():
    b = LPSNetBackbone(**LPSNET_TINY, identity_init=True)
    # depth 1 everywhere: only stage 5 (stride 1, 32 -> 32) keeps its shape
    assert len(_shape_preserving(b)) == 1
    first = b.paths[0].stages[0][0].conv.weight.numpy()
    assert abs(first[:3, :3, 1, 1].diagonal().mean()) < 0.5
