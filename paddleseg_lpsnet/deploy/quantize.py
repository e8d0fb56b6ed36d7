"""int8 export: post-training static quantization of an ONNX export with onnxruntime's tools.

`quantize_export(fp32_dir, save_dir, calib_dir)` calibrates activation ranges on
images (pre-processed with the export's deploy.yaml transforms, exactly as
`lpsnet infer` feeds them) and writes a QDQ ONNX model that onnxruntime runs with
int8 convolutions (it fuses DequantizeLinear -> Conv -> QuantizeLinear into
QLinearConv). `lpsnet export --quantize int8 --calib_dir DIR` is this after an
fp32 ONNX export. The choices, measured in benchmarks/NOTES.md:

- activations uint8 (asymmetric), weights int8 per output channel (symmetric);
- full 8-bit weights by default. `reduce_range=True` (7-bit weights) is onnxruntime's
  advice for CPUs without VNNI, whose u8 x s8 kernels could saturate int16 pair sums;
  on this project's AVX2 CPU it measured worse on both counts for the demo's trained
  LPS-Net-S (label agreement with fp32 98.57% vs 99.06%, latency 0.81x vs 0.73x of
  fp32 in the same run; benchmarks/NOTES.md), so it is an option, not the default;
- only convolutions are quantized, and not those reading the image (at most 4
  input channels: slower in int8 than in fp32, and they see the raw pixels) nor
  the classifier computing the logits (int8 logits move the argmax wherever two
  classes are close); the upsampling and argmax after it stay fp32 too;
- MinMax calibration by default (percentile and entropy on request).
"""
import os
import shutil
import tempfile

import numpy as np

from paddleseg_lpsnet.deploy.config import DEPLOY_FILE, DeployConfig
from paddleseg_lpsnet.errors import ConfigError, DataError, LPSNetError
from paddleseg_lpsnet.utils.io import atomic_write_text

__all__ = ["CALIB_METHODS", "calibration_batches", "quantize_export", "quantizable_convs", "output_convs",
           "cpu_has_vnni"]

CALIB_METHODS = ("minmax", "percentile", "entropy")
IMAGE_CONV_MAX_CHANNELS = 4


def cpu_has_vnni():
    """Whether the CPU has int8 dot-product instructions (AVX512-VNNI or AVX-VNNI)."""
    from paddleseg_lpsnet.deploy.benchmark import cpu_flags
    return bool({"avx512_vnni", "avx_vnni"} & set(cpu_flags()))


def calibration_batches(config, calib_dir, num_images=32):
    """float32 [1, C, H, W] model inputs of up to `num_images` images of `calib_dir`.

    Images are read and transformed as `lpsnet infer` does (deploy.yaml's
    transforms); when there are more, an evenly spaced subset is used. Raises
    DataError for a missing or empty folder, an unreadable image, or an image
    whose transformed size the export's fixed input shape does not accept.
    """
    from paddleseg_lpsnet.utils.image import list_images
    if num_images < 1:
        raise ConfigError(f"--calib_num must be >= 1, got {num_images}.")
    if not calib_dir or not os.path.exists(calib_dir):
        raise DataError(f"--calib_dir {calib_dir} does not exist; expected a folder of calibration images "
                        "(a few dozen images like the ones the model will see).")
    images, _ = list_images(calib_dir)
    return _calibration_inputs(config, images, num_images)


def _calibration_inputs(config, images, num_images):
    from paddleseg_lpsnet.deploy.segmenter import preprocess
    from paddleseg_lpsnet.utils.image import read_image
    if len(images) > num_images:
        images = [images[int(i)] for i in np.linspace(0, len(images) - 1, num_images)]
    transforms = config.build_transforms()
    fixed = config.input_shape[1:]
    for path in images:
        chw, _ = preprocess(read_image(path, config.in_channels), transforms)
        if any(f != -1 and f != d for f, d in zip(fixed, chw.shape)):
            raise DataError(f"Calibration image {path}: after the deploy.yaml transforms it is {list(chw.shape)} "
                            f"(C, H, W) but the export takes {fixed}; use images of that size or export "
                            "without --input_shape.")
        yield chw[None]


def output_convs(model):
    """Names of the Conv nodes nearest to the graph outputs: those computing the logits.

    Walks back from the outputs through every non-Conv node and stops at Convs.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    found, seen = [], set()
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "Conv":
            found.append(node.name)
        else:
            stack.extend(node.input)
    return found


def quantizable_convs(model, keep_output_convs=True):
    """Names of the Conv nodes of an ONNX ModelProto to quantize.

    All but those reading the image (<= 4 input channels) and, with
    `keep_output_convs`, those computing the logits (`output_convs`): int8 logits
    move the argmax wherever two classes are close.
    """
    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant" and n.attribute}
    keep = set(output_convs(model)) if keep_output_convs else set()
    names = []
    for node in model.graph.node:
        if node.op_type != "Conv" or node.name in keep:
            continue
        weight = inits.get(node.input[1]) or consts.get(node.input[1])
        if weight is not None and weight.dims[1] <= IMAGE_CONV_MAX_CHANNELS:
            continue
        names.append(node.name)
    return names


def _reader(input_name, batches):
    from onnxruntime.quantization import CalibrationDataReader

    class _Images(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(batches)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    return _Images()


def _onnx_model(config):
    """The fp32 ONNX ModelProto of an export (a Paddle export is converted)."""
    import onnx
    if config.format == "onnx":
        return onnx.load(config.model_file)
    from paddleseg_lpsnet.deploy.export import paddle_to_onnx
    return onnx.load_from_string(paddle_to_onnx(config.model_file, config.params_file))


def _constants_to_initializers(model):
    """Move Constant nodes' tensors to initializers (paddle2onnx writes weights as Constant
    nodes; the quantizer stores int8 weights only for initializers)."""
    keep = []
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _name_nodes(model):
    """Give every node a unique name (the quantizer selects nodes by name)."""
    seen = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def quantize_export(fp32_dir, save_dir, calib_dir, num_images=32, method="minmax", reduce_range=False,
                    per_channel=True, keep_output_convs=True):
    """Write an int8 export of the fp32 export in `fp32_dir` to `save_dir`; returns its DeployConfig.

    Args:
        fp32_dir (str): An `lpsnet export` directory (ONNX, or Paddle: converted).
        save_dir (str): Output directory: model.onnx (QDQ) + deploy.yaml (precision int8).
        calib_dir (str): Calibration images (a folder, an image or a file list).
        num_images (int, optional): Calibration images used at most. Default: 32.
        method (str, optional): minmax, percentile or entropy. Default: "minmax".
        reduce_range (bool, optional): 7-bit weights (see the module docstring).
            Default: False.
        per_channel (bool, optional): One weight scale per output channel. Default: True.
        keep_output_convs (bool, optional): Keep the convolutions computing the logits
            in fp32 (see `quantizable_convs`). Default: True.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIB_METHODS:
        raise ConfigError(f"--calib_method {method!r} is not one of {', '.join(CALIB_METHODS)}.")
    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        raise ConfigError(f"--save_dir {save_dir} is a file; expected a directory.")
    config = DeployConfig.load(fp32_dir)
    if config.output_op != "argmax":
        raise ConfigError(f"{fp32_dir} outputs {config.output_op}; int8 export supports argmax exports.")
    model = _onnx_model(config)
    _constants_to_initializers(model)
    _name_nodes(model)
    convs = quantizable_convs(model, keep_output_convs)
    if not convs:
        raise LPSNetError(f"{fp32_dir} has no convolution to quantize.")
    batches = calibration_batches(config, calib_dir, num_images)  # read lazily: images can be large
    os.makedirs(save_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".quantize-", dir=save_dir)
    try:
        fp32_path = os.path.join(staging, "fp32.onnx")
        onnx.save(model, fp32_path)
        out_path = os.path.join(staging, "model.onnx")
        quantize_static(fp32_path, out_path, _reader(model.graph.input[0].name, batches),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=reduce_range,
                        nodes_to_quantize=convs, op_types_to_quantize=["Conv"],
                        calibrate_method={"minmax": CalibrationMethod.MinMax,
                                          "percentile": CalibrationMethod.Percentile,
                                          "entropy": CalibrationMethod.Entropy}[method],
                        calibration_providers=["CPUExecutionProvider"])
        os.replace(out_path, os.path.join(save_dir, "model.onnx"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    int8 = DeployConfig(model_dir=save_dir, model="model.onnx", params=None, transforms=config.transforms,
                        output_op=config.output_op, input_shape=config.input_shape,
                        num_classes=config.num_classes, precision="int8")
    atomic_write_text(int8.to_yaml(), os.path.join(save_dir, DEPLOY_FILE))
    return int8
