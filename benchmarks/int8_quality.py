"""int8 against fp32 for a trained model: mIoU of both, label agreement, and latency, in one run.

    python benchmarks/int8_quality.py --config CONFIG --model_path CKPT --calib_dir TRAIN_IMAGES

Exports the model as `lpsnet export --format onnx` would (fp32) and as `lpsnet export
--quantize int8 --calib_dir ...` would (same code), runs both on the config's
val_dataset through `lpsnet infer`'s segmenter (onnxruntime), and reports mIoU
of each against the labels, the fraction of pixels where int8 and fp32 agree,
and the latency of each (batch 1 at --bench_size, default the first val image's
size; round-robin, median). Writes int8_quality.json / .md to --save_dir.

`--keep_exports DIR` also keeps both exports (DIR/fp32, DIR/int8) and DIR/val.npz (the
first `--keep_val` val images, preprocessed, with their labels), for
`benchmarks/int8_elsewhere.py` to time and check them on another machine's CPU.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import cv2
import numpy as np
from common import (ROOT, add_int8_model_arguments, add_timing_arguments, check_int8_model_arguments, main_with_errors,
                    timing_from_args)
from int8_elsewhere import confusion, miou


def val_pairs(cfg, limit):
    """(image path, label path) of the config's val_dataset, at most `limit` (evenly spaced)."""
    from paddleseg_lpsnet.core.builder import build_val_dataset
    dataset = build_val_dataset(cfg, "the config")
    pairs = [tuple(p[:2]) for p in dataset.dataset.file_list]  # CheckedDataset wraps PaddleSeg's dataset
    if limit and len(pairs) > limit:
        pairs = [pairs[int(i)] for i in np.linspace(0, len(pairs) - 1, limit)]
    return pairs, dataset.num_classes, dataset.ignore_index


def latency(dirs, shape, threads, args, clock):
    from paddleseg_lpsnet.deploy import DeployConfig, create_predictor
    from paddleseg_lpsnet.deploy.benchmark import time_round_robin
    predictors = {name: create_predictor(DeployConfig.load(d), backend="onnxruntime", cpu_threads=threads)
                  for name, d in dirs.items()}
    batch = np.random.RandomState(0).standard_normal(shape).astype("float32")
    return time_round_robin(predictors, batch, args.rounds, args.repeats, args.warmup, clock)


def keep_exports(dirs, pairs, transforms, num_classes, ignore_index, folder):
    """Copy the exports to folder/fp32, folder/int8 and write folder/val.npz (inputs, labels)."""
    from paddleseg_lpsnet.deploy.segmenter import preprocess
    from paddleseg_lpsnet.errors import ConfigError
    from paddleseg_lpsnet.utils.image import read_image
    inputs, labels = [], []
    for image_path, label_path in pairs:
        chw, trans_info = preprocess(read_image(image_path), transforms)
        if trans_info:
            raise ConfigError(f"--keep_exports: the val transforms resize or pad {image_path} ({trans_info}); "
                              "val.npz keeps model inputs at the labels' size only.")
        inputs.append(chw)
        labels.append(cv2.imread(label_path, cv2.IMREAD_UNCHANGED))
    os.makedirs(folder)
    for name, src in dirs.items():
        shutil.copytree(src, os.path.join(folder, name))
    np.savez_compressed(os.path.join(folder, "val.npz"), inputs=np.stack(inputs), labels=np.stack(labels),
                        num_classes=num_classes, ignore_index=ignore_index)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_int8_model_arguments(parser)
    parser.add_argument("--calib_method", default="minmax", choices=["minmax", "percentile", "entropy"])
    parser.add_argument("--val_num", type=int, default=None, help="val images used at most; default: all")
    parser.add_argument("--bench_size", default=None, help="HxW of the latency input; default: first val image")
    add_timing_arguments(parser)
    parser.add_argument("--reduce_range", action="store_true", help="7-bit weights (onnxruntime's advice "
                        "for CPUs without VNNI)")
    parser.add_argument("--keep_exports", default=None, metavar="DIR",
                        help="also write both exports and val.npz here, for int8_elsewhere.py (must not exist)")
    parser.add_argument("--keep_val", type=int, default=16, help="val images kept in val.npz (default 16)")
    parser.add_argument("--save_dir", default=os.path.join(ROOT, "benchmarks", "results", "int8_quality"))
    args = parser.parse_args(argv)
    check_int8_model_arguments(parser, args)
    if args.keep_exports and os.path.exists(args.keep_exports):
        parser.error(f"--keep_exports {args.keep_exports} exists; give a new folder (nothing is overwritten)")
    if args.keep_val < 1:
        parser.error("--keep_val must be >= 1")
    threads, clock = timing_from_args(parser, args)

    from paddleseg_lpsnet.deploy import DeployedSegmenter, export_model
    from paddleseg_lpsnet.deploy.benchmark import machine_info
    from paddleseg_lpsnet.deploy.config import config_num_classes, val_transforms_of
    from paddleseg_lpsnet.deploy.quantize import cpu_has_vnni, quantize_export
    from paddleseg_lpsnet.deploy.suite import parse_size
    from paddleseg_lpsnet.utils.config import build_model_with_weights, load_config
    from paddleseg_lpsnet.utils.image import read_image

    cfg = load_config(args.config)
    model, _ = build_model_with_weights(cfg, args.model_path)
    pairs, num_classes, ignore = val_pairs(cfg, args.val_num)
    with tempfile.TemporaryDirectory(prefix="lpsnet-int8-") as workdir:
        dirs = {"fp32": os.path.join(workdir, "fp32"), "int8": os.path.join(workdir, "int8")}
        export_model(model, dirs["fp32"], transforms=val_transforms_of(cfg), format="onnx",
                     num_classes=config_num_classes(cfg, model))
        quantize_export(dirs["fp32"], dirs["int8"], args.calib_dir, args.calib_num, args.calib_method,
                        reduce_range=args.reduce_range)
        segmenters = {name: DeployedSegmenter(d, backend="onnxruntime", cpu_threads=threads)
                      for name, d in dirs.items()}
        matrices = {name: np.zeros((num_classes, num_classes), np.int64) for name in dirs}
        same = total = 0
        for image_path, label_path in pairs:
            image = read_image(image_path)
            label = cv2.imread(label_path, cv2.IMREAD_UNCHANGED)
            preds = {name: s.predict([image])[0] for name, s in segmenters.items()}
            for name, pred in preds.items():
                matrices[name] += confusion(pred, label, num_classes, ignore)
            same += int((preds["fp32"] == preds["int8"]).sum())
            total += preds["fp32"].size
        if args.keep_exports:
            keep_exports(dirs, pairs[:args.keep_val], segmenters["fp32"].transforms, num_classes, ignore,
                         args.keep_exports)
        if args.bench_size:
            h, w = parse_size(args.bench_size)
        else:
            h, w = read_image(pairs[0][0]).shape[:2]
        runs = latency(dirs, [1, 3, h, w], threads, args, clock)
    scores = {name: miou(m) for name, m in matrices.items()}
    med = {name: float(np.median(v)) for name, v in runs.items()}
    agreement = same / total
    lines = [f"{os.path.relpath(args.config)} + {args.model_path}: {len(pairs)} val images, calibration "
             f"{args.calib_num} images of {args.calib_dir} ({args.calib_method}); onnxruntime, {threads} threads, "
             f"{args.clock} clock, input {h}x{w}; {machine_info(threads)['cpu']} "
             f"({'with' if cpu_has_vnni() else 'no'} VNNI; {7 if args.reduce_range else 8}-bit weights)", "",
             "| model | mIoU (classes in labels or predictions) | latency (ms, median) | vs fp32 |",
             "|---|---:|---:|---:|",
             f"| fp32 | {100 * scores['fp32'][0]:.2f} | {med['fp32']:.1f} | 1.00 |",
             f"| int8 | {100 * scores['int8'][0]:.2f} | {med['int8']:.1f} | {med['int8'] / med['fp32']:.2f} |", "",
             f"int8 labels = fp32 labels on {100 * agreement:.2f}% of the pixels."]
    table = "\n".join(lines) + "\n"
    print(table)
    os.makedirs(args.save_dir, exist_ok=True)
    with open(os.path.join(args.save_dir, "int8_quality.json"), "w") as f:
        json.dump({"config": args.config, "model_path": args.model_path, "val_images": len(pairs),
                   "miou": {k: v[0] for k, v in scores.items()}, "class_iou": {k: v[1] for k, v in scores.items()},
                   "agreement": agreement, "latency_runs_ms": runs, "input_hw": [h, w], "threads": threads,
                   "clock": args.clock, "machine": machine_info(threads)}, f, indent=1)
    with open(os.path.join(args.save_dir, "int8_quality.md"), "w") as f:
        f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main_with_errors(main))
