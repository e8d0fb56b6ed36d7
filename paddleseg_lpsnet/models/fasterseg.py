"""FasterSeg: the searched student and teacher networks, for PaddleSeg.

Paper: Chen, Gong, Liu, Zhang, Li, Wang, "FasterSeg: Searching for Faster Real-time
Semantic Segmentation", ICLR 2020, arXiv 1912.10917.
Reference code: VITA-Group/FasterSeg (MIT; was chenwydj/FasterSeg): `train/model_seg.py`
(network), `train/operations.py` (cells), `train/seg_oprs.py` (heads). The searched
networks are architecture logits in `train/fasterseg/arch_1.pt` (student) and
`arch_0.pt` (teacher); `FASTERSEG_ARCHS` below is their decoding by the authors'
`network_metas` with the output branches [1/32, 1/16] that their train.py chooses,
written out (no torch file is read here). Both networks derive exactly: every cell,
width and head below is what the authors' code builds from those files.

Network: stem to 1/8 -> cells shared by both branches at 1/8 -> branch "32" (down to
1/32) and branch "16" (down to 1/16) -> per branch, a top-down fusion back to 1/8
(Conv1x1 -> upsample -> concat with the branch's feature at that scale -> Conv3x3)
-> concat of both -> Conv1x1 fuse -> classifier -> bilinear to the input size. In
training two auxiliary classifiers also see concat(a16, b16) and a32.

Sizes (tests/test_fasterseg.py checks them):
- student: 3,421,875 parameters at inference (the paper's 3.42M), 4,352,921 with the
  training heads; 27.8 GMACs at 1024x2048;
- teacher: 22,115,203 at inference (the paper's 22.12M), 23,450,409 with the training
  heads; 107.8 GMACs at 1024x2048.
The authors' "with training heads" figures (4.39M, 23.52M) also count 32,768 / 73,728
weights of a channel-attention branch in their `FeatureFusion` that `forward` never
runs. It is not built here; `lpsnet convert` drops those tensors and says so.

Deviations (for inputs whose sides are multiples of 32, where the authors' code works,
the function is theirs):
- any input size works. The authors upsample by fixed factors (x8, x16, x32) and
  concatenate a16 with b16, which fails when a side is not a multiple of 32 (a zoomed
  stride-2 cell floors the size, a strided conv rounds it up). Here each upsample goes
  to the size of the tensor it meets (the skip, or the input), and b16 is resized to
  a16's size before the auxiliary concat (an identity where they already agree);
- a zoomed cell keeps a 1-pixel side at 1 pixel (the authors' resize to 0 fails);
- BatchNorm is Paddle's BatchNorm2D (eps 1e-5, momentum 0.1 in torch's sense), folded
  into the convolutions by `to_deploy`. Paddle's default initialisation is the
  authors' `init_weight` (conv weights Kaiming normal, fan in; BN weight 1, bias 0)
  except the classifiers' bias, which starts at 0 (torch's default uniform in theirs);
- only the branch pair [1/32, 1/16] is built: both published networks use it (the
  authors' code can also pair 1/32 with a branch that stays at 1/8).
"""
import copy

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddleseg.cvlibs import manager

from paddleseg_lpsnet.models.layers import ConvBNAct, resize, resize_to, spatial_size
from paddleseg_lpsnet.utils.checkpoint import load_model_pretrained

__all__ = [
    "FasterSegCell", "FasterSegBranch", "FasterSegFusion", "FasterSegClassifier",
    "FasterSegNet", "FasterSegStudent", "FasterSegTeacher", "FASTERSEG_ARCHS",
    "fasterseg_arch",
]

# Cells are (op, out_channels) or (op, out_channels, stride). head_channels are the
# widths of the top-down fusion at 1/8, 1/16 and 1/32; each branch's last cell has
# the width of its deepest scale.
_Z2 = "conv_2x_downup"
FASTERSEG_ARCHS = {
    # arch_1.pt, stem and head at 8/12 of Fch=12, cell widths from the search.
    "student": dict(
        stem=(32, 64, 64),
        shared=(("conv_2x", 32), ("conv_2x", 32), (_Z2, 32)),
        branch32=(("conv_downup", 128, 2), (_Z2, 64), (_Z2, 64), (_Z2, 64),
                  (_Z2, 128, 2), (_Z2, 128), (_Z2, 256)),
        branch16=((_Z2, 32), ("conv_2x", 32), ("conv_2x", 64, 2), (_Z2, 64), (_Z2, 192),
                  (_Z2, 128)),
        head_channels=(64, 128, 256),
    ),
    # arch_0.pt, every width 1.0 x Fch=12.
    "teacher": dict(
        stem=(48, 96, 96),
        shared=(("conv_downup", 96),) + ((_Z2, 96),) * 3,
        branch32=((_Z2, 96), (_Z2, 192, 2), (_Z2, 192), ("conv_downup", 192))
        + ((_Z2, 192),) * 5 + ((_Z2, 384, 2), ("conv_2x", 384), ("conv_2x", 384)),
        branch16=((_Z2, 192, 2), ("conv_2x", 192), (_Z2, 192), ("conv_downup", 192))
        + ((_Z2, 192),) * 8,
        head_channels=(96, 192, 384),
    ),
}

_OPS = ("conv", "conv_2x", "conv_downup", "conv_2x_downup")
_ARCH_KEYS = ("stem", "shared", "branch32", "branch16", "head_channels")


def _cell_spec(spec, where):
    """(op, out_channels, stride) from a cell entry, or ValueError naming it."""
    if not isinstance(spec, (list, tuple)) or len(spec) not in (2, 3):
        raise ValueError(f"FasterSeg {where}: a cell is [op, out_channels] or "
                         f"[op, out_channels, stride], got {spec!r}.")
    op, out, stride = spec[0], int(spec[1]), int(spec[2]) if len(spec) == 3 else 1
    if op not in _OPS:
        raise ValueError(f"FasterSeg {where}: unknown op {op!r}; expected one of {', '.join(_OPS)}.")
    if stride not in (1, 2) or out < 1:
        raise ValueError(f"FasterSeg {where}: stride must be 1 or 2 and channels >= 1, got {spec!r}.")
    return op, out, stride


def fasterseg_arch(arch):
    """Validate a FasterSeg architecture (a FASTERSEG_ARCHS name or a dict) and normalise it.

    Returns a dict with `stem` (3 ints), `shared`, `branch32`, `branch16` (tuples of
    (op, out_channels, stride)) and `head_channels` (3 ints). Raises ValueError
    naming the offending entry.
    """
    if isinstance(arch, str):
        if arch not in FASTERSEG_ARCHS:
            raise ValueError(f"Unknown FasterSeg arch {arch!r}; expected one of "
                             f"{', '.join(FASTERSEG_ARCHS)} or a dict with {', '.join(_ARCH_KEYS)}.")
        arch = FASTERSEG_ARCHS[arch]
    if not isinstance(arch, dict) or set(arch) != set(_ARCH_KEYS):
        got = sorted(arch) if isinstance(arch, dict) else type(arch).__name__
        raise ValueError(f"A FasterSeg arch dict has exactly the keys {', '.join(_ARCH_KEYS)}; got {got}.")
    out = {key: tuple(int(c) for c in arch[key]) for key in ("stem", "head_channels")}
    if len(out["stem"]) != 3 or len(out["head_channels"]) != 3:
        raise ValueError(f"FasterSeg stem and head_channels take 3 widths each; got "
                         f"{list(out['stem'])} and {list(out['head_channels'])}.")
    for key in ("shared", "branch32", "branch16"):
        out[key] = tuple(_cell_spec(s, f"{key}[{i}]") for i, s in enumerate(arch[key]))
    downs = {key: sum(s[2] == 2 for s in out[key]) for key in ("shared", "branch32", "branch16")}
    if downs != {"shared": 0, "branch32": 2, "branch16": 1}:
        raise ValueError(f"FasterSeg stride-2 cells: shared needs 0, branch32 2, branch16 1; got {downs}.")
    for key, scale in (("branch32", 2), ("branch16", 1)):
        last = out[key][-1]
        if last[2] == 2 or last[1] != out["head_channels"][scale]:
            raise ValueError(f"FasterSeg {key} must end with a stride-1 cell of "
                             f"head_channels[{scale}] = {out['head_channels'][scale]} channels; got {last}.")
    return out


def _half_size(x):
    """[H//2, W//2] of an NCHW tensor, never below 1 (python ints, or tensors in static graphs)."""
    h, w = spatial_size(x)
    if isinstance(h, int):
        return [max(h // 2, 1), max(w // 2, 1)]
    return [paddle.clip(h // 2, min=1), paddle.clip(w // 2, min=1)]


# -- operators -----------------------------------------------------------------------
class FasterSegCell(nn.Layer):
    """One searched operator: one or two Conv3x3-BN-ReLU, plain or zoomed (run at half size).

    Args:
        op (str): conv, conv_2x, conv_downup or conv_2x_downup.
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int, optional): 2 halves the size: the first conv strides (plain ops),
            or the resize back is skipped (zoomed ops). Default: 1.
    """

    def __init__(self, op, in_channels, out_channels, stride=1):
        super().__init__()
        op, out_channels, stride = _cell_spec((op, out_channels, stride), "cell")
        self.op, self.stride = op, stride
        self.zoomed = op.endswith("_downup")
        depth = 2 if op.startswith("conv_2x") else 1
        convs = []
        for i in range(depth):
            # A zoomed cell applies its last ReLU after the resize back.
            act = "none" if self.zoomed and i == depth - 1 else "relu"
            convs.append(ConvBNAct(in_channels if i == 0 else out_channels, out_channels, 3,
                                   stride=stride if i == 0 and not self.zoomed else 1, act=act))
        self.convs = nn.Sequential(*convs)

    def forward(self, x):
        if not self.zoomed:
            return self.convs(x)  # [N, C', H/s, W/s]
        y = self.convs(resize(x, _half_size(x)))  # [N, C', H//2, W//2]
        if self.stride == 1:
            y = resize_to(y, x)  # [N, C', H, W]
        return F.relu(y)


def _make_cells(specs, in_channels):
    """FasterSegCells for (op, out, stride) specs chained from `in_channels`; returns (cells, out)."""
    cells = []
    for op, out, stride in specs:
        cells.append(FasterSegCell(op, in_channels, out, stride))
        in_channels = out
    return cells, in_channels


# -- cells: branches, fusion and classifiers ------------------------------------------
class FasterSegBranch(nn.Layer):
    """The cells of one branch; returns its last feature at each scale, 1/8 first.

    Args:
        cells (list): (op, out_channels, stride) of each cell.
        in_channels (int): Channels of the shared 1/8 feature it starts from.
    """

    def __init__(self, cells, in_channels):
        super().__init__()
        specs = [_cell_spec(s, f"branch cell {i}") for i, s in enumerate(cells)]
        layers, out = _make_cells(specs, in_channels)
        self.cells = nn.LayerList(layers)
        # The feature entering each stride-2 cell is the last one at its scale.
        widths = [in_channels] + [s[1] for s in specs]
        self.feat_channels = [widths[i] for i, s in enumerate(specs) if s[2] == 2] + [out]

    def forward(self, x):
        feats = []
        for cell in self.cells:
            if cell.stride == 2:
                feats.append(x)
            x = cell(x)
        feats.append(x)
        return feats  # [N, C_i, H/8 / 2^i, W/8 / 2^i] for i = 0 .. number of stride-2 cells


class FasterSegFusion(nn.Layer):
    """Top-down path of a branch, from its deepest feature back to 1/8 (the authors' arms/refines).

    At each shallower scale: Conv1x1 to that scale's head width -> bilinear to the
    branch's feature there -> concat [upsampled, feature] -> Conv3x3.

    Args:
        feat_channels (list[int]): Channels of the branch's features, 1/8 first.
        head_channels (list[int]): Fusion width at each of those scales.
    """

    def __init__(self, feat_channels, head_channels):
        super().__init__()
        scales = list(reversed(range(len(feat_channels) - 1)))  # deepest skip first
        self.reduce = nn.LayerList([ConvBNAct(head_channels[i + 1], head_channels[i], 1) for i in scales])
        self.refine = nn.LayerList([ConvBNAct(head_channels[i] + feat_channels[i], head_channels[i], 3)
                                    for i in scales])

    def forward(self, feats):
        x = feats[-1]
        for reduce, refine, skip in zip(self.reduce, self.refine, reversed(feats[:-1])):
            x = resize_to(reduce(x), skip)  # [N, C_i, H_i, W_i]
            x = refine(paddle.concat([x, skip], axis=1))
        return x  # [N, head_channels[0], H/8, W/8]


class FasterSegClassifier(nn.Layer):
    """Conv3x3-BN-ReLU then Conv1x1 (with bias) to the classes (the authors' `Head`).

    Args:
        in_channels (int): Input channels; the hidden width is the same up to 256, half above.
        num_classes (int): Number of classes.
    """

    def __init__(self, in_channels, num_classes):
        super().__init__()
        mid = in_channels if in_channels <= 256 else in_channels // 2
        self.conv = ConvBNAct(in_channels, mid, 3)
        self.classifier = nn.Conv2D(mid, num_classes, 1)

    def forward(self, x):
        return self.classifier(self.conv(x))


# -- network ---------------------------------------------------------------------------
@manager.MODELS.add_component
class FasterSegNet(nn.Layer):
    """A FasterSeg network (student, teacher, or another decoded architecture).

    Training returns [main, aux16, aux32] logits at the input size (the authors' pred8,
    pred16, pred32, trained with loss coefs 1, 0.2, 0.2); eval returns [main].

    Args:
        num_classes (int): Number of classes.
        arch (str|dict, optional): "student", "teacher" (FASTERSEG_ARCHS) or a dict with
            stem, shared, branch32, branch16 and head_channels. Default: "student".
        in_channels (int, optional): Input channels. Default: 3.
        pretrained (str, optional): A checkpoint of this model (e.g. from
            `lpsnet convert`); every tensor must load. Default: None.
    """

    def __init__(self, num_classes, arch="student", in_channels=3, pretrained=None):
        super().__init__()
        spec = fasterseg_arch(arch)
        self.arch = copy.deepcopy(spec)
        self.num_classes = num_classes
        self.align_corners = True  # of every resize, the final one to the input size included
        s = spec["stem"]
        self.stem = nn.Sequential(
            ConvBNAct(in_channels, s[0], 3, stride=2),  # 1/2
            FasterSegCell("conv_2x", s[0], s[1], 2),  # 1/4
            FasterSegCell("conv_2x", s[1], s[2], 2))  # 1/8
        shared, c8 = _make_cells(spec["shared"], s[2])
        self.shared = nn.Sequential(*shared)
        head = spec["head_channels"]
        self.branch32 = FasterSegBranch(spec["branch32"], c8)
        self.branch16 = FasterSegBranch(spec["branch16"], c8)
        self.fusion32 = FasterSegFusion(self.branch32.feat_channels, head)
        self.fusion16 = FasterSegFusion(self.branch16.feat_channels, head[:2])
        self.fuse = ConvBNAct(2 * head[0], 2 * head[0], 1)
        self.head = FasterSegClassifier(2 * head[0], num_classes)
        self.aux_head16 = FasterSegClassifier(self.branch32.feat_channels[1] + head[1], num_classes)
        self.aux_head32 = FasterSegClassifier(head[2], num_classes)
        if pretrained is not None:
            load_model_pretrained(self, pretrained)

    def _branches(self, x):
        x8 = self.shared(self.stem(x))  # [N, C, H/8, W/8]
        return self.branch32(x8), self.branch16(x8)  # (a8, a16, a32), (b8, b16)

    def _main_logits(self, a, b):
        fused = paddle.concat([self.fusion32(a), self.fusion16(b)], axis=1)  # [N, 2*C8, H/8, W/8]
        return self.head(self.fuse(fused))  # [N, K, H/8, W/8]

    def forward_lowres(self, x):
        """Main logits before the final upsampling: [N, num_classes, H/8, W/8].

        `forward` resizes them bilinearly (align_corners) to x's size; export uses
        this to take the argmax without building full-size logits.
        """
        return self._main_logits(*self._branches(x))

    def forward(self, x):
        a, b = self._branches(x)
        main = resize_to(self._main_logits(a, b), x, self.align_corners)  # [N, K, H, W]
        if not self.training:
            return [main]
        aux16 = self.aux_head16(paddle.concat([a[1], resize_to(b[1], a[1])], axis=1))  # 1/16
        aux32 = self.aux_head32(a[2])  # 1/32
        return [main, resize_to(aux16, x), resize_to(aux32, x)]


# -- factories -------------------------------------------------------------------------
@manager.MODELS.add_component
def FasterSegStudent(num_classes, in_channels=3, pretrained=None):
    """The FasterSeg student (arch_1.pt): 3.42M parameters at inference, 27.8 GMACs at 1024x2048.

    Args:
        num_classes (int): Number of classes.
        in_channels (int, optional): Input channels. Default: 3.
        pretrained (str, optional): A checkpoint of this model. Default: None.
    """
    return FasterSegNet(num_classes, "student", in_channels, pretrained)


@manager.MODELS.add_component
def FasterSegTeacher(num_classes, in_channels=3, pretrained=None):
    """The FasterSeg teacher (arch_0.pt): 22.12M parameters at inference, 107.8 GMACs at 1024x2048.

    Args:
        num_classes (int): Number of classes.
        in_channels (int, optional): Input channels. Default: 3.
        pretrained (str, optional): A checkpoint of this model. Default: None.
    """
    return FasterSegNet(num_classes, "teacher", in_channels, pretrained)
