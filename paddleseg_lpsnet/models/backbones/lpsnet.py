"""LPS-Net backbone: parallel plain-conv paths over resized copies of the input.

Paper: Zhang, Yao, Qiu, Mei, "Lightweight and Progressively-Scalable Networks for
Semantic Segmentation", arXiv 2207.13600 (IJCV 2023).
Reference code: the authors' YihengZhang-CV/LPS-Net (PyTorch, inference only) and
PaddleSeg's `paddleseg/models/lpsnet.py`.

Deviations from PaddleSeg's port (same function, checked in tests/test_lpsnet_upstream.py):
- one path works (PaddleSeg's interaction returns a bare tensor and crashes);
- ratios are sorted from the highest down and 0 means "no path", as in the authors' code;
- resizes that cannot change anything (ratio 1, the reference path in the head) are
  not emitted, so the exported graph has no identity interpolations;
- BN is plain BatchNorm2D; the trainer converts it to SyncBatchNorm when asked, and
  `to_deploy` folds it into the convs;
- given `class_num`, the backbone is an ImageNet classifier (global pooling of every
  path, concatenation, FC) for the pretraining stage in `pretrain_imagenet/`;
- `identity_init=True` (off by default) starts every shape-preserving 3x3 conv as the
  identity plus small noise (as DiracNets do), which lets the deep plain paths train
  from scratch in short schedules (the demo uses it; benchmarks/synth_learnability.py
  measures the effect).
"""
import paddle
import paddle.nn as nn
from paddleseg.cvlibs import manager

from paddleseg_lpsnet.models.layers import ConvBNAct, resize, resize_to
from paddleseg_lpsnet.utils.checkpoint import load_backbone_pretrained

__all__ = [
    "LPSNetBackbone", "LPSNetBackbone_S", "LPSNetBackbone_M", "LPSNetBackbone_L",
    "LPSNET_ARCHS", "LPSNET_TINY", "lpsnet_arch",
]

# Variant table. Params (BN affine included): S 3.38M, M 3.38M, L 9.17M with a
# 19-class head; GMACs at 1024x2048: 10.42 / 17.72 / 43.81.
LPSNET_ARCHS = {
    "S": dict(depths=(1, 3, 3, 10, 10), channels=(8, 24, 48, 96, 96), scale_ratios=(0.75, 0.25)),
    "M": dict(depths=(1, 3, 3, 10, 10), channels=(8, 24, 48, 96, 96), scale_ratios=(1.0, 0.25)),
    "L": dict(depths=(1, 3, 3, 10, 10), channels=(8, 24, 64, 160, 160), scale_ratios=(1.0, 0.25)),
}
# The paper's starting point of progressive scaling.
LPSNET_TINY = dict(depths=(1, 1, 1, 1, 1), channels=(4, 8, 16, 32, 32), scale_ratios=(0.5,))

MAX_PATHS = 3


def lpsnet_arch(depths, channels, scale_ratios):
    """Validate an LPS-Net architecture and return it normalised.

    Returns (depths, channels, ratios) as tuples, with the ratios of the paths that
    exist (ratio > 0) sorted from the highest down. Raises ValueError naming the
    offending value otherwise.
    """
    depths, channels = tuple(int(d) for d in depths), tuple(int(c) for c in channels)
    if len(depths) != len(channels):
        raise ValueError(f"LPS-Net depths {depths} and channels {channels} must have the same length.")
    if len(depths) < 3:
        raise ValueError(f"LPS-Net needs at least 3 stages, got depths {depths}.")
    if any(d < 1 for d in depths) or any(c < 1 for c in channels):
        raise ValueError(f"LPS-Net depths {depths} and channels {channels} must all be >= 1.")
    ratios = tuple(sorted((float(r) for r in scale_ratios if float(r) != 0.0), reverse=True))
    if any(r < 0 for r in ratios):
        raise ValueError(f"LPS-Net scale ratios must be >= 0 (0 = no path), got {list(scale_ratios)}.")
    if not 1 <= len(ratios) <= MAX_PATHS:
        raise ValueError(f"LPS-Net takes 1 to {MAX_PATHS} paths (ratios > 0), got {list(scale_ratios)}.")
    return depths, channels, ratios


class LPSNetPath(nn.Layer):
    """One path: stages of Conv3x3-BN-ReLU blocks, strides 2 except the last stage."""

    def __init__(self, depths, channels, in_channels):
        super().__init__()
        stages, c_in = [], in_channels
        last = len(depths) - 1
        for idx, (depth, c_out) in enumerate(zip(depths, channels)):
            blocks = []
            for i in range(depth):
                stride = 2 if (i == 0 and idx != last) else 1
                blocks.append(ConvBNAct(c_in if i == 0 else c_out, c_out, 3, stride=stride))
            stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.stages = nn.LayerList(stages)


def multipath_interaction(feats):
    """Each path adds the bilinear-resized features of every other path."""
    if len(feats) == 1:
        return feats
    out = []
    for i, x in enumerate(feats):
        for j, y in enumerate(feats):
            if j != i:
                x = x + resize_to(y, feats[i])
        out.append(x)
    return out


@manager.BACKBONES.add_component
class LPSNetBackbone(nn.Layer):
    """LPS-Net backbone, generic over depths, channels and scale ratios.

    Returns the last-stage features of every path (highest ratio first), or, when
    `class_num` is given, ImageNet logits from the pooled paths.

    Args:
        depths (list[int]): Blocks per stage (5 stages in the paper).
        channels (list[int]): Channels per stage.
        scale_ratios (list[float]): Input scale of each path; 0 means no path. 1 to 3 paths.
        in_channels (int, optional): Image channels. Default: 3.
        interaction_begin (int, optional): Paths interact after stages
            interaction_begin .. len(depths)-2 (0-based). Default: 2.
        class_num (int, optional): Build the ImageNet classifier form with this many
            classes (global pooling + FC). Default: None (segmentation backbone).
        pretrained (str, optional): A classification or segmentation checkpoint whose
            backbone tensors must all load (see utils.checkpoint). Default: None.
        identity_init (bool, optional): Start every stride-1 3x3 conv with as many inputs
            as outputs as the identity plus N(0, 0.01) noise, for training from scratch.
            Default: False (Paddle's default initialisation, as PaddleSeg).
    """

    def __init__(self, depths, channels, scale_ratios, in_channels=3, interaction_begin=2,
                 class_num=None, pretrained=None, identity_init=False):
        super().__init__()
        self.depths, self.channels, self.scale_ratios = lpsnet_arch(depths, channels, scale_ratios)
        self.in_channels = in_channels
        if not 0 <= interaction_begin < len(self.depths):
            raise ValueError(f"interaction_begin must be in [0, {len(self.depths) - 1}], got {interaction_begin}.")
        self.interaction_begin = interaction_begin
        self.paths = nn.LayerList(
            [LPSNetPath(self.depths, self.channels, in_channels) for _ in self.scale_ratios])
        self.feat_channels = [self.channels[-1]] * len(self.scale_ratios)
        self.class_num = class_num
        if class_num is not None:
            self.pool = nn.AdaptiveAvgPool2D(1)
            self.fc = nn.Linear(sum(self.feat_channels), class_num)
        if identity_init:
            self.init_identity()
        if pretrained is not None:
            load_backbone_pretrained(self, pretrained)

    def init_identity(self, noise_std=0.01):
        """Set every shape-preserving conv (stride 1, C_in == C_out) to identity + noise; returns how many."""
        count = 0
        for path in self.paths:
            for stage in path.stages:
                for block in stage:
                    conv = block.conv
                    if conv._stride == [1, 1] and conv._in_channels == conv._out_channels:
                        c, k = conv._out_channels, conv._kernel_size[0]
                        weight = paddle.normal(0.0, noise_std, conv.weight.shape)
                        dirac = paddle.zeros(conv.weight.shape)
                        dirac[paddle.arange(c), paddle.arange(c), k // 2, k // 2] = 1.0
                        conv.weight.set_value(weight + dirac)
                        count += 1
        return count

    @property
    def num_paths(self):
        return len(self.scale_ratios)

    def path_inputs(self, x):
        """The input of every path: the image resized by the path's ratio."""
        h, w = x.shape[-2], x.shape[-1]
        inputs = []
        for r in self.scale_ratios:
            if r == 1.0:
                inputs.append(x)
            elif isinstance(h, int) and h > 0 and isinstance(w, int) and w > 0:
                inputs.append(resize(x, [int(h * r), int(w * r)]))
            else:  # static graph with unknown size
                shape = paddle.shape(x)
                size = [(shape[2].astype("float32") * r).astype("int32"),
                        (shape[3].astype("float32") * r).astype("int32")]
                inputs.append(resize(x, size))
        return inputs

    def forward_features(self, x):
        feats = self.path_inputs(x)
        last = len(self.depths) - 1
        for idx in range(len(self.depths)):
            feats = [path.stages[idx](f) for path, f in zip(self.paths, feats)]
            if self.interaction_begin <= idx < last:
                feats = multipath_interaction(feats)
        return feats  # each [N, C_last, ~H*r/16, ~W*r/16]

    def forward(self, x):
        feats = self.forward_features(x)
        if self.class_num is None:
            return feats
        pooled = paddle.concat([self.pool(f) for f in feats], axis=1).flatten(1)
        return self.fc(pooled)


def _variant(name, **kwargs):
    arch = dict(LPSNET_ARCHS[name])
    for key in ("depths", "channels", "scale_ratios"):
        if key in kwargs:
            raise ValueError(f"LPSNetBackbone_{name} fixes {key}; use LPSNetBackbone to change it.")
    return LPSNetBackbone(**arch, **kwargs)


@manager.BACKBONES.add_component
def LPSNetBackbone_S(**kwargs):
    """LPS-Net-S backbone: depths 1,3,3,10,10, channels 8,24,48,96,96, ratios 3/4, 1/4.

    Args:
        **kwargs: Any LPSNetBackbone argument except the architecture.
    """
    return _variant("S", **kwargs)


@manager.BACKBONES.add_component
def LPSNetBackbone_M(**kwargs):
    """LPS-Net-M backbone: LPS-Net-S with the first ratio raised to 1.

    Args:
        **kwargs: Any LPSNetBackbone argument except the architecture.
    """
    return _variant("M", **kwargs)


@manager.BACKBONES.add_component
def LPSNetBackbone_L(**kwargs):
    """LPS-Net-L backbone: LPS-Net-M with stages 3-5 widened to 64, 160, 160.

    Args:
        **kwargs: Any LPSNetBackbone argument except the architecture.
    """
    return _variant("L", **kwargs)
