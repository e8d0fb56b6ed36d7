"""Building blocks shared by the model families of the zoo.

`ConvBNAct` is the conv -> BN -> activation block every family uses; it knows how
to fold its BatchNorm into the convolution for deployment (`fuse_bn`), which is
what `paddleseg_lpsnet.models.deploy.to_deploy` calls on a whole model.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["ConvBNAct", "make_activation", "resize", "resize_to", "spatial_size", "crop_to",
           "fold_bn_into_conv", "freeze_batchnorm"]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "leakyrelu": lambda: SlopedReLU(0.2),
    None: nn.Identity,
    "none": nn.Identity,
}


class SlopedReLU(nn.Layer):
    """Leaky ReLU as a PReLU of fixed slope: the function of nn.LeakyReLU, in a form the
    deployment backends get right. With nn.LeakyReLU, paddle2onnx 2.1 writes the slope
    as 1.4e-45 and Paddle Inference's oneDNN conv fusion crashes reading it; written
    max(y, slope * y), oneDNN miscomputes a 1x1-map conv output read twice. The slope
    is a non-persistable buffer: checkpoints do not hold it.
    """

    def __init__(self, negative_slope):
        super().__init__()
        self.negative_slope = float(negative_slope)
        self.register_buffer("slope", paddle.to_tensor([self.negative_slope], dtype="float32"),
                             persistable=False)

    def forward(self, x):
        return F.prelu(x, self.slope)


def make_activation(name):
    """Return a new activation layer from its name (relu, gelu, leakyrelu, none)."""
    key = name.lower() if isinstance(name, str) else name
    if key not in _ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; expected one of relu, gelu, leakyrelu, none.")
    return _ACTIVATIONS[key]()


def resize(x, size, align_corners=True):
    """Bilinear resize of an NCHW tensor to `size` (a pair of ints or int tensors)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def resize_to(x, ref, align_corners=True):
    """Bilinear resize of `x` to the spatial size of `ref`."""
    return resize(x, spatial_size(ref), align_corners)


def spatial_size(x):
    """(H, W) of an NCHW tensor: python ints when known, else shape tensors (static graphs)."""
    h, w = x.shape[-2], x.shape[-1]
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        return [h, w]
    shape = paddle.shape(x)
    return [shape[2], shape[3]]


def crop_to(x, ref):
    """The top-left part of `x` with the spatial size of `ref` (x must be at least as large).

    A stride-2 transposed conv with output_padding 1 gives 2*h rows; cropping the
    last one when the skip has 2*h - 1 rows gives what output_padding 0 would.
    """
    h, w = spatial_size(ref)
    if isinstance(h, int) and list(x.shape[-2:]) == [h, w]:
        return x
    return x[:, :, :h, :w]


def fold_bn_into_conv(conv, bn):
    """Fold BatchNorm `bn` (eval statistics) into `conv` in place; the conv gains a bias.

    `conv` is a Conv2D, or a Conv2DTranspose with groups=1 (its weight is
    [in, out, k, k], so the per-output-channel scale applies on axis 1).
    """
    std = paddle.sqrt(bn._variance + bn._epsilon)
    scale = bn.weight / std
    if isinstance(conv, nn.Conv2DTranspose):
        if conv._groups != 1:
            raise ValueError("fold_bn_into_conv: grouped transposed convs are not supported.")
        weight = conv.weight * scale.reshape([1, -1, 1, 1])
    else:
        weight = conv.weight * scale.reshape([-1, 1, 1, 1])
    bias = bn.bias - bn._mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    conv.weight.set_value(weight)
    if conv.bias is None:
        conv.bias = conv.create_parameter(shape=[conv._out_channels], is_bias=True)
    conv.bias.set_value(bias)


class ConvBNAct(nn.Layer):
    """Conv2D (no bias) -> BatchNorm2D -> activation, foldable into one conv.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel size. Padding keeps the size at stride 1 ("same").
        stride (int, optional): Stride. Default: 1.
        dilation (int, optional): Dilation. Default: 1.
        groups (int, optional): Groups (in_channels for depthwise). Default: 1.
        act (str, optional): relu, gelu, leakyrelu or none. Default: "relu".
        bias (bool, optional): Give the conv a bias even before folding. Default: False.
        bn_epsilon (float, optional): BatchNorm epsilon. Default: 1e-5.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1,
                 groups=1, act="relu", bias=False, bn_epsilon=1e-5):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2D(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, dilation=dilation, groups=groups,
                              bias_attr=None if bias else False)
        self.bn = nn.BatchNorm2D(out_channels, epsilon=bn_epsilon)
        self.act = make_activation(act)

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)

    def fuse_bn(self):
        """Fold the BN into the conv (deploy form). Idempotent."""
        if self.bn is None:
            return
        fold_bn_into_conv(self.conv, self.bn)
        self.bn = None


def freeze_batchnorm(layer):
    """Freeze every BatchNorm in `layer`: eval statistics, no statistics update, no affine grads.

    Safe to call again after `layer.train()` (which puts BN back in training mode);
    models with a `freeze_bn` option call it from their `train()`. `use_global_stats`
    also keeps a BN frozen when only a wrapper's `train()` ran. Returns the number
    of BN layers frozen.
    """
    count = 0
    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, (nn.BatchNorm2D, nn.SyncBatchNorm, nn.BatchNorm)):
            sub.training = False
            sub._use_global_stats = True
            for param in (sub.weight, sub.bias):
                if param is not None:
                    param.stop_gradient = True
            count += 1
    return count
