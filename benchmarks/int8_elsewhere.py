"""int8 against fp32 on another machine's CPU, with onnxruntime alone (no Paddle there).

`int8_quality.py --keep_exports DIR` writes the two exports it compares (DIR/fp32,
DIR/int8: model.onnx + deploy.yaml) and DIR/val.npz (preprocessed val images and
their labels). Copy DIR to a machine with python3, numpy and onnxruntime, then

    python benchmarks/int8_elsewhere.py DIR --threads 2 8 --size 1024x2048 --save_dir OUT

times both models side by side (batch 1, round-robin, median after warm-up) at each
thread count, and reports the label agreement of int8 with fp32 and the mIoU of each
on the kept val images, with the CPU's model name and int8 dot-product features
(AVX512-VNNI, AVX-VNNI, AMX), which decide how fast onnxruntime's int8 kernels are.
This file imports nothing from the project, so it runs where Paddle is not installed
(int8_quality.py takes its confusion / mIoU code from here).
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "avx512f", "avx2")


def cpu_description():
    """(model name, the int8-relevant flags present) from /proc/cpuinfo (Linux)."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return name, [flag for flag in INT8_FLAGS if flag in flags]


def session(model_file, threads, profile_prefix=None):
    """An onnxruntime CPU session as the project's predictor makes it (all graph optimisations)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model_file, options, providers=["CPUExecutionProvider"])


def op_profile(model_file, shape, threads, runs=5):
    """{op type: ms per run}: onnxruntime's own per-node timing, median over `runs` after one warm-up."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="int8-profile-") as tmp:
        sess = session(model_file, threads, os.path.join(tmp, "ort"))
        batch = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
        for _ in range(runs + 1):
            run(sess, batch)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    per_node, op_of = {}, {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node = event["name"][:-len("_kernel_time")]
            per_node.setdefault(node, []).append(event["dur"])
            op_of[node] = event["args"].get("op_name", "?")
    by_op = {}
    for node, durations in per_node.items():
        by_op[op_of[node]] = by_op.get(op_of[node], 0.0) + float(np.median(durations[1:] or durations)) / 1000.0
    return dict(sorted(by_op.items(), key=lambda kv: -kv[1]))


def run(sess, batch):
    return sess.run(None, {sess.get_inputs()[0].name: batch})[0]


def confusion(pred, label, num_classes, ignore_index):
    keep = label != ignore_index
    index = label[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def miou(matrix):
    """(mean IoU over the classes that occur in the labels or the predictions, each class's IoU)."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()), (tp / np.maximum(union, 1)).tolist()


def load_exports(folder, int8="int8"):
    """({name: model.onnx path} of DIR/fp32 and DIR/<int8>, DIR/val.npz's arrays); SystemExit naming
    what is missing."""
    models = {"fp32": os.path.join(folder, "fp32", "model.onnx"), "int8": os.path.join(folder, int8, "model.onnx")}
    missing = [p for p in list(models.values()) + [os.path.join(folder, "val.npz")] if not os.path.isfile(p)]
    if missing:
        raise SystemExit(f"{folder} is not an int8_quality.py --keep_exports folder: missing {', '.join(missing)}")
    with np.load(os.path.join(folder, "val.npz")) as data:
        val = {key: data[key] for key in data.files}
    return models, val


def quality(models, val, threads):
    """Label agreement of int8 with fp32 and each model's mIoU over the kept val images."""
    sessions = {name: session(path, threads) for name, path in models.items()}
    num_classes, ignore = int(val["num_classes"]), int(val["ignore_index"])
    matrices = {name: np.zeros((num_classes, num_classes), np.int64) for name in sessions}
    same = total = 0
    for image, label in zip(val["inputs"], val["labels"]):
        preds = {name: run(s, image[None].astype(np.float32))[0] for name, s in sessions.items()}
        for name, pred in preds.items():
            matrices[name] += confusion(pred, label, num_classes, ignore)
        same += int((preds["fp32"] == preds["int8"]).sum())
        total += preds["fp32"].size
    return same / total, {name: miou(m)[0] for name, m in matrices.items()}


def latency(models, shape, threads, rounds, repeats, warmup):
    """{name: ms list}: both models at `threads`, round-robin, after `warmup` runs each."""
    sessions = {name: session(path, threads) for name, path in models.items()}
    batch = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    for s in sessions.values():
        for _ in range(warmup):
            run(s, batch)
    runs = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, s in sessions.items():
            for _ in range(repeats):
                start = time.perf_counter()
                run(s, batch)
                runs[name].append((time.perf_counter() - start) * 1000.0)
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="what int8_quality.py --keep_exports wrote")
    parser.add_argument("--int8", default="int8", help="the int8 export's subfolder (default int8; "
                        "int8_variants.py writes others)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2], help="thread counts to time (default 2)")
    parser.add_argument("--size", default="1024x2048", help="HxW of the latency input (default 1024x2048)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--profile", action="store_true",
                        help="also break each model's time down by op type (onnxruntime's profiler, first --threads)")
    parser.add_argument("--save_dir", default=None, help="where int8_elsewhere.json / .md go (default: print only)")
    args = parser.parse_args(argv)
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r} is not HxW")
    if min(args.threads) < 1 or args.rounds < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--threads, --rounds and --repeats must be >= 1, --warmup >= 0")
    models, val = load_exports(args.folder, args.int8)

    import onnxruntime as ort
    cpu, flags = cpu_description()
    agreement, scores = quality(models, val, max(args.threads))
    rows = []
    for threads in args.threads:
        runs = latency(models, [1, 3, h, w], threads, args.rounds, args.repeats, args.warmup)
        med = {name: float(np.median(v)) for name, v in runs.items()}
        rows.append({"threads": threads, "median_ms": med, "ratio": med["int8"] / med["fp32"], "runs_ms": runs})
    features = ", ".join(flags) or "none of " + ", ".join(INT8_FLAGS)
    lines = [f"{args.folder}, int8 = {args.int8}: {cpu} ({os.cpu_count()} logical CPUs; {features}); "
             f"onnxruntime {ort.__version__}, Python {platform.python_version()}; input 1x3x{h}x{w}, "
             f"{args.rounds}x{args.repeats} runs per model after {args.warmup} warm-up", "",
             "| threads | fp32 (ms, median) | int8 (ms, median) | int8 / fp32 |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['threads']} | {r['median_ms']['fp32']:.1f} | {r['median_ms']['int8']:.1f} | {r['ratio']:.2f} |"
              for r in rows]
    lines += ["", f"{len(val['labels'])} val images: int8 labels = fp32 labels on {100 * agreement:.2f}% of the "
              f"pixels; mIoU fp32 {100 * scores['fp32']:.2f}, int8 {100 * scores['int8']:.2f}."]
    profiles = {}
    if args.profile:
        profiles = {name: op_profile(path, [1, 3, h, w], args.threads[0]) for name, path in models.items()}
        lines += ["", f"Time by op type ({args.threads[0]} threads, onnxruntime's profiler, ms per run):", "",
                  "| model | " + " | ".join(f"op {i + 1}" for i in range(8)) + " | total |",
                  "|---|" + "---|" * 9]
        for name, ops in profiles.items():
            top = [f"{op} {ms:.1f}" for op, ms in list(ops.items())[:8]] + [""] * max(0, 8 - len(ops))
            lines.append(f"| {name} | " + " | ".join(top) + f" | {sum(ops.values()):.1f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.save_dir:
        os.makedirs(args.save_dir, exist_ok=True)
        with open(os.path.join(args.save_dir, "int8_elsewhere.json"), "w") as f:
            json.dump({"cpu": cpu, "cpu_flags": flags, "logical_cpus": os.cpu_count(),
                       "onnxruntime": ort.__version__, "input_shape": [1, 3, h, w], "rows": rows, "int8": args.int8,
                       "agreement": agreement, "miou": scores, "val_images": int(len(val["labels"])),
                       "op_profile_ms": profiles}, f, indent=1)
        with open(os.path.join(args.save_dir, "int8_elsewhere.md"), "w") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
