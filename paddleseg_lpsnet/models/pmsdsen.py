"""PMSDSEN: parallel multi-scale detail and semantic encoding network.

Paper: Liu, Shi, Chen, Qing, Ren, "Efficient Parallel Multi-Scale Detail and Semantic
Encoding Network for Lightweight Semantic Segmentation", ACM MM 2023
(doi 10.1145/3581783.3611848).
Reference code: liux520/PMSDSEN (PyTorch; `Model/PMSDSEN.py`, `Model/modules.py`).
It has no licence: this is a fresh implementation from the paper and the project's
notes (shared/reference/pmsdsen.md). `lpsnet convert` maps the authors' checkpoints
onto it (paddleseg_lpsnet/convert/pmsdsen.py).

Same function as the reference at sizes divisible by 8: tests/test_pmsdsen_convert.py
compares with outputs of the authors' own model (19 classes: 922,373 parameters with
every head, as theirs). Deviations:
- any input size works. The reference assumes H, W divisible by 8: its 2x2 poolings
  in the down-sampling blocks floor while the stride-2 convs beside them ceil, and
  its transposed convs always double. Here the 2x2 poolings use ceil_mode (a mean
  or max over the partial window at an odd border) and each up-sampled map is
  cropped to its skip's size (the last row/column a transposed conv with
  output_padding 1 adds; output_padding 0 would not have produced it). Neither
  changes anything at sizes divisible by 8;
- the input image is pooled once per level and shared (the reference pools the
  full image again in every down-sampling block; same values);
- the logits are resized to the input size, not scaled by 2/4/8;
- in eval mode only the main head runs and the model returns [main logits];
- `freeze_bn=True` freezes BatchNorm for good (statistics and affine): the
  reference's "freeze BN" is undone by the `model.train()` of every epoch;
- the reference's channel "shuffle" with one channel per group is the identity
  and is left out.
Porting: BatchNorm momentum 0.9 (Paddle's default, PyTorch's 0.1) and eps 1e-5 (1e-3
after the transposed convs); exact GELU; average pooling with padding counts the
padding (`exclusive=False`, PyTorch's default); bilinear resizes use
align_corners=False as the reference's `F.interpolate` calls do.
"""
import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddleseg.cvlibs import manager

from paddleseg_lpsnet.models.layers import ConvBNAct, crop_to, freeze_batchnorm, resize_to
from paddleseg_lpsnet.utils.checkpoint import load_model_pretrained

__all__ = ["PMSDSENet", "PMSDSEN_ARCH", "eca_kernel_size"]

# The published network: base width C and PMSDSE units per level
# (layer1 .. layer5 at 1/2, 1/4, 1/8, 1/4, 1/2).
PMSDSEN_ARCH = dict(base_channels=32, blocks=(1, 2, 6, 2, 1))

_UP_BN_EPSILON = 1e-3


def eca_kernel_size(channels, gamma=2, b=1):
    """ECA's adaptive 1-D kernel: t = int((log2 C + b) / gamma), made odd (3 for C <= 64, 5 for 128)."""
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Layer):
    """Efficient channel attention: global pool -> Conv1d over channels -> sigmoid -> scale."""

    def __init__(self, channels):
        super().__init__()
        k = eca_kernel_size(channels)
        self.conv = nn.Conv1D(1, 1, k, padding=(k - 1) // 2, bias_attr=False)

    def forward(self, x):
        y = F.adaptive_avg_pool2d(x, 1).flatten(1).unsqueeze(1)  # [N, 1, C]
        y = self.conv(y).transpose([0, 2, 1]).unsqueeze(-1)     # [N, C, 1, 1]
        return x * F.sigmoid(y)


class BNAct(nn.Layer):
    """BatchNorm -> GELU on a tensor that no conv precedes directly (not foldable)."""

    def __init__(self, channels):
        super().__init__()
        self.bn = nn.BatchNorm2D(channels)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.bn(x))


class LDIBasic(nn.Layer):
    """Conv1x1 to C/2 -> depthwise Conv3x3; concat both (local detail)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        half = out_channels // 2
        self.compress = ConvBNAct(in_channels, half, 1, act="gelu")
        self.process = ConvBNAct(half, half, 3, groups=half, act="gelu")

    def forward(self, x):
        x1 = self.compress(x)
        return paddle.concat([x1, self.process(x1)], axis=1)


class LRMS(nn.Layer):
    """Large-range multi-scale: four cascaded depthwise 3x3 convs, dilations 1-4, on channel quarters."""

    def __init__(self, channels, dilations=(1, 2, 3, 4)):
        super().__init__()
        self.num_chunks = len(dilations)
        c = channels // self.num_chunks
        self.proj_in = ConvBNAct(channels, channels, 1, act="gelu", bias=True)
        self.branches = nn.LayerList([
            ConvBNAct(c, c, 3, dilation=d, groups=c, act="gelu", bias=True) for d in dilations])
        self.proj_out = ConvBNAct(channels, channels, 1, act="none", bias=True)
        self.act = nn.GELU()

    def forward(self, x):
        chunks = paddle.split(self.proj_in(x), self.num_chunks, axis=1)
        ys, y = [], None
        for branch, chunk in zip(self.branches, chunks):
            y = branch(chunk if y is None else chunk + y)
            ys.append(y)
        return self.act(self.proj_out(paddle.concat(ys, axis=1)) + x)


class MSLRIBasic(nn.Layer):
    """Conv1x1 to C/2 -> LRMS; concat both (multi-scale long range)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        half = out_channels // 2
        self.reduce = ConvBNAct(in_channels, half, 1, act="gelu", bias=True)
        self.lrms = LRMS(half)

    def forward(self, x):
        x1 = self.reduce(x)
        return paddle.concat([x1, self.lrms(x1)], axis=1)


class BasicPairResidual(nn.Layer):
    """x + basic2(ECA(basic1(x))): the LDI and MSLRI branches of a PMSDSE unit."""

    def __init__(self, basic, channels):
        super().__init__()
        self.basic1 = basic(channels, channels)
        self.eca = ECA(channels)
        self.basic2 = basic(channels, channels)

    def forward(self, x):
        return x + self.basic2(self.eca(self.basic1(x)))


class PMSDSEUnit(nn.Layer):
    """PMSDSE unit: LDI + MSLRI + ECA in parallel on GELU(BN(x)), projection, ECA, residual."""

    def __init__(self, channels):
        super().__init__()
        self.entry = BNAct(channels)
        self.ldi = BasicPairResidual(LDIBasic, channels)
        self.mslri = BasicPairResidual(MSLRIBasic, channels)
        self.eca = ECA(channels)
        self.mid = BNAct(channels)
        self.proj = ConvBNAct(channels, channels, 1, act="none", bias=True)
        self.out_eca = ECA(channels)
        self.act = nn.GELU()

    def forward(self, x):
        y = self.entry(x)
        s = self.ldi(y) + self.mslri(y) + self.eca(y)
        return self.act(self.out_eca(self.proj(self.mid(s))) + x)


def image_pool(img):
    """One level of the image pyramid injected into the encoder: avgpool3 s2 + maxpool3 s2."""
    return (F.avg_pool2d(img, 3, stride=2, padding=1, exclusive=False)
            + F.max_pool2d(img, 3, stride=2, padding=1))


class DownSampling(nn.Layer):
    """Stride-2 block with image injection: [Conv3x3 s2(feature ++ image), max+avg pool(feature)] -> BN -> GELU."""

    def __init__(self, in_channels, out_channels, image_channels):
        super().__init__()
        if out_channels <= in_channels:
            raise ValueError(f"DownSampling widens: out_channels {out_channels} must exceed "
                             f"in_channels {in_channels}.")
        self.conv = ConvBNAct(in_channels + image_channels, out_channels - in_channels, 3,
                              stride=2, act="gelu")
        self.out = BNAct(out_channels)

    def forward(self, x, image):
        y = self.conv(paddle.concat([x, image], axis=1))  # [N, out - in, ceil(h/2), ceil(w/2)]
        pooled = (F.max_pool2d(x, 2, stride=2, ceil_mode=True)
                  + F.avg_pool2d(x, 2, stride=2, ceil_mode=True))
        return self.out(paddle.concat([y, pooled], axis=1))


class TransposedUp(ConvBNAct):
    """ConvTranspose3x3 s2 (output_padding 1) -> BN (eps 1e-3) -> GELU, cropped to the skip's size.

    A ConvBNAct whose conv is transposed: `fuse_bn` folds the BN into it the same way.
    """

    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels, 3, act="gelu", bn_epsilon=_UP_BN_EPSILON)
        self.conv = nn.Conv2DTranspose(in_channels, out_channels, 3, stride=2, padding=1,
                                       output_padding=1)

    def forward(self, x, skip):
        y = crop_to(self.conv(x), skip)  # [N, out, 2h, 2w] -> skip's size
        if self.bn is not None:
            y = self.bn(y)
        return self.act(y)


class DWFF(nn.Layer):
    """Dynamic weighted feature fusion: per-channel softmax weights over two maps (selective kernel)."""

    def __init__(self, channels, reduction):
        super().__init__()
        hidden = max(int(channels / reduction), 4)
        self.squeeze = ConvBNAct(channels, hidden, 1, act="leakyrelu", bias=True)
        self.select = nn.LayerList([nn.Conv2D(hidden, channels, 1) for _ in range(2)])

    def forward(self, a, b):
        z = self.squeeze(F.adaptive_avg_pool2d(a + b, 1))  # [N, hidden, 1, 1]
        weights = F.softmax(paddle.stack([fc(z) for fc in self.select]), axis=0)
        return weights[0] * a + weights[1] * b


class PooledBranch(nn.Layer):
    """Average pooling (padding counted) -> Conv1x1 -> BN -> GELU."""

    def __init__(self, in_channels, out_channels, kernel_size, stride):
        super().__init__()
        self.pool = nn.AvgPool2D(kernel_size, stride, padding=kernel_size // 2, exclusive=False)
        self.proj = ConvBNAct(in_channels, out_channels, 1, act="gelu")

    def forward(self, x):
        return self.proj(self.pool(x))


class BNActConvECA(nn.Layer):
    """BN -> GELU -> Conv1x1 (no bias) -> ECA: the two outputs of MSSE."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.pre = BNAct(in_channels)
        self.conv = nn.Conv2D(in_channels, out_channels, 1, bias_attr=False)
        self.eca = ECA(out_channels)

    def forward(self, x):
        return self.eca(self.conv(self.pre(x)))


class MSSE(nn.Layer):
    """Multi-scale semantic extractor: cascaded pooled context (1/2, 1/4, 1/8, global) + shortcut."""

    POOLS = ((5, 2), (9, 4), (17, 8))  # (kernel, stride); padding kernel // 2

    def __init__(self, in_channels, mid_channels, out_channels):
        super().__init__()
        self.reduce = ConvBNAct(in_channels, mid_channels, 1, act="gelu")
        self.pooled = nn.LayerList([PooledBranch(in_channels, mid_channels, k, s) for k, s in self.POOLS])
        self.global_branch = ConvBNAct(in_channels, mid_channels, 1, act="gelu")
        self.refine = nn.LayerList([ConvBNAct(mid_channels, mid_channels, 3, act="gelu")
                                    for _ in range(len(self.POOLS) + 1)])
        self.tail = BNActConvECA(mid_channels * (len(self.POOLS) + 2), out_channels)
        self.shortcut = BNActConvECA(in_channels, out_channels)

    def forward(self, x):
        y = self.reduce(x)
        ys = [y]
        for branch, refine in zip(self.pooled, self.refine):
            y = refine(resize_to(branch(x), x, align_corners=False) + y)
            ys.append(y)
        # the global context is 1x1: its bilinear upsampling is a broadcast
        y = self.refine[-1](self.global_branch(F.adaptive_avg_pool2d(x, 1)) + y)
        ys.append(y)
        return self.tail(paddle.concat(ys, axis=1)) + self.shortcut(x)


class SegHead(nn.Layer):
    """Conv1x1 -> BN -> GELU -> Conv1x1 -> BN (BN on the logits)."""

    def __init__(self, in_channels, mid_channels, num_classes):
        super().__init__()
        self.hidden = ConvBNAct(in_channels, mid_channels, 1, act="gelu", bias=True)
        self.classify = ConvBNAct(mid_channels, num_classes, 1, act="none", bias=True)

    def forward(self, x):
        return self.classify(self.hidden(x))


def _units(channels, count):
    return nn.Sequential(*[PMSDSEUnit(channels) for _ in range(count)])


def _check_arch(base_channels, blocks):
    blocks = tuple(int(b) for b in blocks)
    if len(blocks) != 5 or any(b < 1 for b in blocks):
        raise ValueError(f"PMSDSENet blocks must be 5 counts >= 1 (layer1..layer5), got {list(blocks)}.")
    if base_channels < 8 or base_channels % 8:
        raise ValueError(f"PMSDSENet base_channels must be a multiple of 8 (LRMS splits C/2 into "
                         f"4 chunks), got {base_channels}.")
    return int(base_channels), blocks


@manager.MODELS.add_component
class PMSDSENet(nn.Layer):
    """PMSDSEN (ACM MM 2023) for semantic segmentation, with its two auxiliary heads.

    Training returns [main, aux x4, aux x8] logits at input size (loss coefs
    1, 0.1, 0.1 in the paper); eval returns [main].

    Args:
        num_classes (int): Number of classes.
        in_channels (int, optional): Image channels (the image is also injected
            into the encoder). Default: 3.
        base_channels (int, optional): Width C at 1/2 resolution (2C at 1/4, 4C at
            1/8); a multiple of 8. Default: 32, as published.
        blocks (list[int], optional): PMSDSE units in layer1..layer5. Default:
            [1, 2, 6, 2, 1], as published.
        freeze_bn (bool, optional): Freeze every BatchNorm (statistics and affine)
            for good, surviving `train()`: the paper's second Cityscapes stage.
            Default: False.
        align_corners (bool, optional): Align corners of the resize of the logits
            to the input size. Default: False, as the reference.
        pretrained (str, optional): A checkpoint of this model (every tensor must
            load); `lpsnet convert` writes one from the authors' .pth. Default: None.
    """

    def __init__(self, num_classes, in_channels=3, base_channels=PMSDSEN_ARCH["base_channels"],
                 blocks=PMSDSEN_ARCH["blocks"], freeze_bn=False, align_corners=False, pretrained=None):
        super().__init__()
        c, blocks = _check_arch(base_channels, blocks)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.base_channels, self.blocks = c, blocks
        self.align_corners = align_corners
        self.freeze_bn = bool(freeze_bn)
        self.stem = nn.Sequential(
            ConvBNAct(in_channels, c // 2, 3, stride=2, act="gelu", bias=True),
            ConvBNAct(c // 2, c, 3, act="none", bias=True))
        self.layer1 = _units(c, blocks[0])
        self.down2 = DownSampling(c, 2 * c, in_channels)
        self.layer2 = _units(2 * c, blocks[1])
        self.down3 = DownSampling(2 * c, 4 * c, in_channels)
        self.layer3 = _units(4 * c, blocks[2])
        self.msse = MSSE(4 * c, 2 * c, 4 * c)
        self.up4 = TransposedUp(4 * c, 2 * c)
        self.fuse4 = DWFF(2 * c, reduction=8)
        self.layer4 = _units(2 * c, blocks[3])
        self.up5 = TransposedUp(2 * c, c)
        self.fuse5 = DWFF(c, reduction=4)
        self.layer5 = _units(c, blocks[4])
        self.seg_head_x2 = SegHead(c, c // 2, num_classes)
        self.seg_head_x4 = SegHead(2 * c, c, num_classes)
        self.seg_head_x8 = SegHead(4 * c, 2 * c, num_classes)
        if pretrained is not None:
            load_model_pretrained(self, pretrained)
        if self.freeze_bn:
            freeze_batchnorm(self)

    def train(self, mode=True):
        super().train(mode)
        if self.freeze_bn:
            freeze_batchnorm(self)
        return self

    def forward(self, x):
        image2 = image_pool(x)                                # [N, in, H/2, W/2]
        image4 = image_pool(image2)                           # [N, in, H/4, W/4]
        f1 = self.layer1(self.stem(x))                        # [N, C, H/2, W/2]
        f2 = self.layer2(self.down2(f1, image2))              # [N, 2C, H/4, W/4]
        f3 = self.msse(self.layer3(self.down3(f2, image4)))   # [N, 4C, H/8, W/8]
        f4 = self.layer4(self.fuse4(self.up4(f3, f2), f2))    # [N, 2C, H/4, W/4]
        f5 = self.layer5(self.fuse5(self.up5(f4, f1), f1))    # [N, C, H/2, W/2]
        main = resize_to(self.seg_head_x2(f5), x, self.align_corners)  # [N, K, H, W]
        if not self.training:
            return [main]
        return [main,
                resize_to(self.seg_head_x4(f4), x, self.align_corners),
                resize_to(self.seg_head_x8(f3), x, self.align_corners)]
