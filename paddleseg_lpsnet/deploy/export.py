"""Exporting a segmentation model for deployment: Paddle inference model or ONNX + deploy.yaml.

`export_model` takes any PaddleSeg-style model object (ours or upstream's), puts it
in deploy form (BN folded by `to_deploy` where the model supports it) and eval
mode, appends the output op (argmax / softmax / none) so the graph has exactly one
output (argmax of a model that exposes its low-resolution logits goes through
`sparse_upsampled_argmax`, which never builds the full-size logits), traces it
with `paddle.jit` and writes:

- Paddle: whatever `paddle.jit.save` writes under the running IR -- model.json
  (PIR, the default on Paddle 3) or model.pdmodel (legacy IR,
  FLAGS_enable_pir_api=0) -- plus model.pdiparams;
- ONNX: model.onnx, converted from that Paddle model by paddle2onnx;

and a deploy.yaml naming exactly those files. Files are written into a temporary
folder inside save_dir and moved into place at the end, deploy.yaml last, so a
failed export leaves an earlier one in save_dir intact.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddleseg_lpsnet.deploy.config import (DEFAULT_OPSET, DEPLOY_FILE, FORMATS, OUTPUT_OPS, DeployConfig,
                                            build_transforms)
from paddleseg_lpsnet.errors import ConfigError, LPSNetError
from paddleseg_lpsnet.deploy.sparse_argmax import argmax_int32, sparse_upsampled_argmax
from paddleseg_lpsnet.models.deploy import to_deploy
from paddleseg_lpsnet.models.layers import spatial_size
from paddleseg_lpsnet.utils.io import atomic_write_text

__all__ = ["ExportHead", "export_model", "paddle_to_onnx", "model_in_channels", "has_lowres_logits"]

_PREFIX = "model"


def has_lowres_logits(model):
    """Whether `model` exposes `forward_lowres(x)`: logits that `forward` upsamples bilinearly to x's size."""
    return callable(getattr(model, "forward_lowres", None)) and isinstance(getattr(model, "align_corners", None), bool)


class ExportHead(nn.Layer):
    """A segmentation model in eval form with the output op appended: one tensor out.

    Args:
        model (nn.Layer): Returns a list of logits (the first is the prediction) or a tensor.
        output_op (str): argmax (int32 [N, H, W]), softmax or none (float32 [N, C, H, W]).
        sparse_argmax (bool, optional): For argmax, when the model exposes
            `forward_lowres` (see `has_lowres_logits`), take the labels with
            `sparse_upsampled_argmax` instead of upsampling all logits. Default: True.
    """

    def __init__(self, model, output_op="argmax", sparse_argmax=True):
        super().__init__()
        if output_op not in OUTPUT_OPS:
            raise ConfigError(f"output_op {output_op!r} is not one of {', '.join(OUTPUT_OPS)}.")
        self.model = model
        self.output_op = output_op
        self.sparse_argmax = bool(sparse_argmax) and output_op == "argmax" and has_lowres_logits(model)

    def forward(self, x):
        # Paddle 3.3's legacy static graph (FLAGS_enable_pir_api=0) lacks ops the
        # sparse form uses (floor, ...); it keeps the dense argmax.
        if self.sparse_argmax and (paddle.in_dynamic_mode() or paddle.framework.in_pir_mode()):
            logit = self.model.forward_lowres(x)  # [N, C, h, w]
            return sparse_upsampled_argmax(logit, spatial_size(x), self.model.align_corners)
        outs = self.model(x)
        logit = outs[0] if isinstance(outs, (list, tuple)) else outs  # [N, C, H, W]
        if self.output_op == "argmax":
            return argmax_int32(logit, axis=1)
        if self.output_op == "softmax":
            return F.softmax(logit, axis=1)
        return logit


def model_in_channels(model, default=3):
    """Image channels a model takes: its `in_channels`, its backbone's, or its first conv's."""
    for owner in (model, getattr(model, "backbone", None)):
        channels = getattr(owner, "in_channels", None)
        if isinstance(channels, int):
            return channels
    for layer in model.sublayers():
        if isinstance(layer, nn.Conv2D):
            return int(layer.weight.shape[1]) * int(layer._groups)
    return default


def _input_spec(input_shape, in_channels):
    """InputSpec and the deploy.yaml shape ([-1, C, -1, -1] unless fixed) of the model input."""
    if input_shape is None:
        shape = [-1, in_channels, -1, -1]
    else:
        shape = [int(d) for d in input_shape]
        if len(shape) != 4 or any(d == 0 or d < -1 for d in shape):
            raise ConfigError(f"--input_shape {list(input_shape)} must be 4 sizes N C H W (-1 = dynamic).")
        if shape[1] != in_channels:
            raise ConfigError(f"--input_shape has {shape[1]} channels but the model takes {in_channels}.")
    spec = paddle.static.InputSpec([None if d == -1 else d for d in shape], "float32", "x")
    return spec, shape


def _jit_save(layer, spec, folder):
    """paddle.jit.save into `folder`; returns (model file name, params file name) written."""
    static = paddle.jit.to_static(layer, input_spec=[spec], full_graph=True)
    paddle.jit.save(static, os.path.join(folder, _PREFIX))
    for ext in (".json", ".pdmodel"):
        if os.path.isfile(os.path.join(folder, _PREFIX + ext)):
            return _PREFIX + ext, _PREFIX + ".pdiparams"
    raise LPSNetError(f"paddle.jit.save wrote neither {_PREFIX}.json nor {_PREFIX}.pdmodel "
                      f"(found {sorted(os.listdir(folder))}).")


# Run in a child process: paddle2onnx 2.1 aborts the process (SIGABRT) on an op it
# cannot convert, logs other failures and then dies on an unbound name, and with
# `save_file` set runs polygraphy with dependency auto-install switched on.
_P2O_CHILD = """
import sys
import paddle2onnx
model_file, params_file, out_file, opset = sys.argv[1:5]
data = paddle2onnx.export(model_file, params_file, save_file=None, opset_version=int(opset),
                          auto_upgrade_opset=True, enable_onnx_checker=True, enable_optimize=True)
with open(out_file, "wb") as f:
    f.write(data)
"""


def paddle_to_onnx(model_file, params_file, opset_version=DEFAULT_OPSET, source=None):
    """ONNX bytes of a Paddle inference model (model.json or model.pdmodel), via paddle2onnx.

    Raises LPSNetError with paddle2onnx's own error lines when it cannot convert
    the model (e.g. adaptive pooling with a dynamic input size: export with a
    fixed --input_shape). `source` names the model in messages (default: model_file).
    """
    import onnx
    with tempfile.TemporaryDirectory(prefix="lpsnet-onnx-") as tmp:
        out_file = os.path.join(tmp, "model.onnx")
        proc = subprocess.run([sys.executable, "-c", _P2O_CHILD, model_file, params_file, out_file,
                               str(opset_version)], capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.isfile(out_file):
            log = (proc.stdout + "\n" + proc.stderr).splitlines()
            errors = [line.split("]")[-1].strip() for line in log if "[ERROR]" in line]
            lines = [line.strip() for line in log if line.strip()]
            reason = "; ".join(dict.fromkeys(errors)) or (lines[-1] if lines else f"exit code {proc.returncode}")
            hint = (" A fixed --input_shape N C H W often helps (ops such as adaptive pooling "
                    "need static sizes).") if "static" in reason else ""
            raise LPSNetError(f"paddle2onnx could not convert {source or model_file} to ONNX opset {opset_version}: "
                              f"{reason.rstrip('.')}.{hint}")
        with open(out_file, "rb") as f:
            data = f.read()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def export_model(model, save_dir, transforms=None, output_op="argmax", input_shape=None,
                 format="paddle", opset_version=DEFAULT_OPSET, num_classes=None, deploy_form=True,
                 sparse_argmax=True):
    """Export `model` to `save_dir` and return its DeployConfig (as deploy.yaml now says).

    Args:
        model (nn.Layer): A PaddleSeg-style segmentation model (not modified).
        save_dir (str): Output directory (created).
        transforms (list[dict], optional): PaddleSeg transforms to record in
            deploy.yaml (the config's val transforms). Default: [Normalize].
        output_op (str, optional): argmax, softmax or none. Default: "argmax".
        input_shape (list[int], optional): Fixed [N, C, H, W] (-1 = dynamic).
            Default: None, i.e. [-1, C, -1, -1] (dynamic batch and size).
        format (str, optional): "paddle" or "onnx". Default: "paddle".
        opset_version (int, optional): ONNX opset. Default: DEFAULT_OPSET.
        num_classes (int, optional): Recorded for colouring. Default: the model's
            `num_classes` attribute if it has one.
        deploy_form (bool, optional): Fold BN (`to_deploy`) before tracing. Default: True.
        sparse_argmax (bool, optional): With output_op argmax, compute the labels of
            models that expose low-resolution logits with `sparse_upsampled_argmax`
            (same labels, far less work at full resolution). Default: True.
    """
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not one of {', '.join(FORMATS)}.")
    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        raise ConfigError(f"--save_dir {save_dir} is a file; expected a directory.")
    spec, shape = _input_spec(input_shape, model_in_channels(model))
    transforms = list(transforms) if transforms else [{"type": "Normalize"}]
    build_transforms(transforms, shape[1])  # fail now, not at inference, on a bad transform
    net = to_deploy(model) if deploy_form else model
    net.eval()
    layer = ExportHead(net, output_op, sparse_argmax)
    layer.eval()
    os.makedirs(save_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=save_dir)
    try:
        model_name, params_name = _jit_save(layer, spec, staging)
        if format == "onnx":
            data = paddle_to_onnx(os.path.join(staging, model_name), os.path.join(staging, params_name),
                                  opset_version, source=f"{type(model).__name__} (traced)")
            model_name, params_name = _PREFIX + ".onnx", None
            with open(os.path.join(staging, model_name), "wb") as f:
                f.write(data)
        for name in (model_name, params_name):
            if name:
                os.replace(os.path.join(staging, name), os.path.join(save_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if num_classes is None:
        num_classes = getattr(model, "num_classes", None)
    config = DeployConfig(model_dir=save_dir, model=model_name, params=params_name,
                          transforms=transforms, output_op=output_op, input_shape=shape,
                          num_classes=num_classes)
    atomic_write_text(config.to_yaml(), os.path.join(save_dir, DEPLOY_FILE))
    return config
