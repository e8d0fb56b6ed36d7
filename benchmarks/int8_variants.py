"""int8 export variants of a trained model at a fixed input size, for `int8_elsewhere.py`.

    python benchmarks/int8_variants.py --config demo_output/config.yml \\
        --model_path demo_output/train/best_model/model.pdparams \\
        --calib_dir demo_output/data/leftImg8bit/train --size 1024x2048 --out OUT
    python benchmarks/int8_elsewhere.py OUT --int8 int8_adds --threads 2 4 --profile   # each variant

Exports the model in fp32 with a fixed 1x3xHxW input (`lpsnet export --input_shape`)
and quantizes it three ways: the convolutions only (`lpsnet export --quantize int8`),
also the Adds that merge feature maps, and also the feature-map resizes and concats.
Calibration and the kept val image use images resized to HxW (labels with nearest
neighbours). OUT gets fp32/, val.npz and one folder per variant (int8/ = convolutions
only, int8_adds/, int8_adds_resizes/): `int8_quality.py --keep_exports`'s layout, with
`int8_elsewhere.py --int8` choosing the variant. benchmarks/NOTES.md section 6 has what
they measured.
"""
import argparse
import contextlib
import os
import shutil
import sys
import tempfile

import cv2
import numpy as np
from common import add_int8_model_arguments, check_int8_model_arguments, main_with_errors

FEATURE_OPS = {"Conv", "Resize", "Relu", "Add", "Concat"}
VARIANTS = {"int8": (), "int8_adds": ("Add",), "int8_adds_resizes": ("Add", "Resize", "Concat")}


def feature_nodes(model, op_types):
    """Names of the `op_types` nodes of an ONNX model that work on feature maps (inputs made by
    convolutions, resizes, activations, adds or concats), not on shapes or indices."""
    producer = {out: node for node in model.graph.node for out in node.output}
    names = []
    for node in model.graph.node:
        if node.op_type not in op_types:
            continue
        inputs = node.input if node.op_type in ("Add", "Concat") else node.input[:1]
        if all(i in producer and producer[i].op_type in FEATURE_OPS for i in inputs):
            names.append(node.name)
    return names


@contextlib.contextmanager
def also_quantizing(op_types):
    """quantize_export, with the feature-map nodes of `op_types` quantized besides its convolutions."""
    import onnxruntime.quantization as ort_quantization

    import paddleseg_lpsnet.deploy.quantize as quantize
    convs, static = quantize.quantizable_convs, ort_quantization.quantize_static
    if op_types:
        quantize.quantizable_convs = lambda model, keep=True: convs(model, keep) + feature_nodes(model, op_types)
        ort_quantization.quantize_static = lambda *a, **k: static(
            *a, **dict(k, op_types_to_quantize=["Conv", *op_types]))
    try:
        yield
    finally:
        quantize.quantizable_convs, ort_quantization.quantize_static = convs, static


def resized_images(folder, num, size, out_dir):
    """Write up to `num` images of `folder` (evenly spaced) resized to size (h, w) into out_dir."""
    from paddleseg_lpsnet.utils.image import list_images
    paths, _ = list_images(folder)
    if len(paths) > num:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, num)]
    for i, path in enumerate(paths):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"{path}: not an image OpenCV can read")
        cv2.imwrite(os.path.join(out_dir, f"{i:04d}.png"), cv2.resize(image, (size[1], size[0])))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_int8_model_arguments(parser)
    parser.add_argument("--size", default="1024x2048", help="HxW of the fixed input (default 1024x2048)")
    parser.add_argument("--out", required=True, help="output folder (must not exist)")
    args = parser.parse_args(argv)
    check_int8_model_arguments(parser, args)
    if os.path.exists(args.out):
        parser.error(f"--out {args.out} exists; give a new folder (nothing is overwritten)")

    from int8_quality import val_pairs

    from paddleseg_lpsnet.deploy import export_model
    from paddleseg_lpsnet.deploy.config import config_num_classes, val_transforms_of
    from paddleseg_lpsnet.deploy.quantize import quantize_export
    from paddleseg_lpsnet.deploy.segmenter import preprocess
    from paddleseg_lpsnet.deploy.suite import parse_size
    from paddleseg_lpsnet.utils.config import build_model_with_weights, load_config
    from paddleseg_lpsnet.utils.image import read_image

    h, w = parse_size(args.size)
    cfg = load_config(args.config)
    model, _ = build_model_with_weights(cfg, args.model_path)
    pairs, num_classes, ignore = val_pairs(cfg, 1)
    image_path, label_path = pairs[0]
    with tempfile.TemporaryDirectory(prefix="lpsnet-int8-variants-") as workdir:
        fp32 = os.path.join(workdir, "fp32")
        export_model(model, fp32, transforms=val_transforms_of(cfg), format="onnx", input_shape=[1, 3, h, w],
                     num_classes=config_num_classes(cfg, model))
        calib = os.path.join(workdir, "calib")
        os.makedirs(calib)
        resized_images(args.calib_dir, args.calib_num, (h, w), calib)
        chw, _ = preprocess(cv2.resize(read_image(image_path), (w, h)), val_transforms_of_export(fp32))
        label = cv2.resize(cv2.imread(label_path, cv2.IMREAD_UNCHANGED), (w, h), interpolation=cv2.INTER_NEAREST)
        os.makedirs(args.out)
        shutil.copytree(fp32, os.path.join(args.out, "fp32"))
        np.savez_compressed(os.path.join(args.out, "val.npz"), inputs=chw[None], labels=label[None],
                            num_classes=num_classes, ignore_index=ignore)
        for name, op_types in VARIANTS.items():
            with also_quantizing(op_types):
                quantize_export(fp32, os.path.join(args.out, name), calib, args.calib_num)
            print(f"{os.path.join(args.out, name)}: {', '.join(('Conv',) + op_types)} quantized")
    return 0


def val_transforms_of_export(export_dir):
    """The transforms an export's deploy.yaml names, as `lpsnet infer` builds them."""
    from paddleseg_lpsnet.deploy.segmenter import DeployedSegmenter
    return DeployedSegmenter(export_dir, backend="onnxruntime", cpu_threads=1).transforms


if __name__ == "__main__":
    sys.exit(main_with_errors(main))
