"""What single onnxruntime CPU ops cost at the sizes of the sparse argmax (benchmarks/NOTES.md section 9).

    python benchmarks/onnx_op_costs.py [--threads 2] [--places 22000] [--size 1024x2048]
    python benchmarks/onnx_op_costs.py --convs [--threads 1]    # int8 against fp32 convolutions

Each row is a one- or two-node ONNX graph built here and run alone (median of
--repeats after warm-up): the equivalent forms deploy/sparse_argmax.py chose between.
`--places` is the number of boundary places K (a random LPS-Net-M at 1024x2048 has
10k-40k, depending on its weights), C = 19 classes, the label map is 1 x H x W.

`--convs` times instead chains of four 3x3 convolutions of LPS-Net's widths (24, 48, 96 channels,
at the spatial sizes LPS-Net-M gives them at 1024x2048) in fp32 (Conv) and in int8
(QLinearConv, uint8 activations x int8 weights, as `lpsnet export --quantize int8`
runs them): the most int8 can gain on this CPU's kernels (benchmarks/NOTES.md section 6).
"""
import argparse
import sys
import time

import numpy as np
from common import ROOT  # noqa: F401  (puts the checkout on sys.path)


def time_graph(nodes, inputs, feeds, threads, repeats, warmup=5):
    """Median ms of one run of the graph of `nodes` (its outputs: the last node's)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper
    types = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("int64"): TensorProto.INT64,
             np.dtype("int32"): TensorProto.INT32, np.dtype("bool"): TensorProto.BOOL,
             np.dtype("uint8"): TensorProto.UINT8, np.dtype("int8"): TensorProto.INT8}
    graph = helper.make_graph(
        nodes, "op", [helper.make_tensor_value_info(name, types[feeds[name].dtype], list(feeds[name].shape))
                      for name in inputs],
        [helper.make_empty_tensor_value_info(out) for out in nodes[-1].output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    for _ in range(warmup):
        session.run(None, feeds)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feeds)
        runs.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(runs))


def cases(k, h, w, classes=19, seed=0):
    """(label, nodes, input names, feeds) of each op compared."""
    from onnx import helper
    rng = np.random.RandomState(seed)
    node = helper.make_node
    table = rng.rand(w).astype(np.float32)
    lookups = rng.randint(0, w, k).astype(np.int64)
    rows = rng.rand(h // 16 * w, classes).astype(np.float32)
    positions = rng.randint(0, rows.shape[0], k).astype(np.int64)
    wide = rows.reshape(1, h // 16, w, classes)
    triples = np.stack([np.zeros(k, np.int64), positions // w, positions % w], 1)
    column = rng.rand(k, 1).astype(np.float32)
    scalar = np.array([2.0], np.float32)
    mask = rng.rand(1, h, w) > 0.5
    labels = rng.randint(0, classes, (1, h, w)).astype(np.int32)
    flat = labels.reshape(-1)
    return [
        ("Gather of single elements (1-D data) by K indices", [node("Gather", ["d", "i"], ["o"])],
         ["d", "i"], {"d": table, "i": lookups}),
        ("GatherElements, the same lookups", [node("GatherElements", ["d", "i"], ["o"])],
         ["d", "i"], {"d": table, "i": lookups}),
        ("GatherND, rows of C logits by K (n, row, column) triples", [node("GatherND", ["d", "i"], ["o"])],
         ["d", "i"], {"d": wide, "i": triples}),
        ("Gather, the same rows by K flat positions", [node("Gather", ["d", "i"], ["o"])],
         ["d", "i"], {"d": rows, "i": positions}),
        ("Mul of a [K, 1] tensor by a scalar", [node("Mul", ["a", "b"], ["o"])],
         ["a", "b"], {"a": column, "b": scalar}),
        ("Mul of the same K values as a [K] tensor", [node("Mul", ["a", "b"], ["o"])],
         ["a", "b"], {"a": column.reshape(-1), "b": scalar}),
        ("Where over the full label map (int32)", [node("Where", ["c", "a", "b"], ["o"])],
         ["c", "a", "b"], {"c": mask, "a": labels, "b": labels + 1}),
        ("Cast + Mul + Add over the same map (the form in use)",
         [node("Cast", ["c"], ["f"], to=6), node("Mul", ["f", "b"], ["m"]), node("Add", ["a", "m"], ["o"])],
         ["c", "a", "b"], {"c": mask, "a": labels, "b": labels + 1}),
        ("Add writing the label map as the graph output", [node("Add", ["a", "b"], ["o"])],
         ["a", "b"], {"a": labels, "b": labels}),
        ("Add, then Reshape of the flat map to [1, H, W] as the output",
         [node("Add", ["a", "b"], ["s"]), node("Reshape", ["s", "r"], ["o"])],
         ["a", "b", "r"], {"a": flat, "b": flat, "r": np.array([1, h, w], np.int64)}),
    ]


DEPTH = 4


def conv_cases(seed=0):
    """(label, MACs, fp32 graph, int8 graph) of a chain of 3x3 convs per LPS-Net-M width."""
    from onnx import helper, numpy_helper
    rng = np.random.RandomState(seed)
    node = helper.make_node
    out = []
    for channels, (h, w) in ((24, (256, 512)), (48, (128, 256)), (96, (64, 128))):
        x = rng.standard_normal([1, channels, h, w]).astype(np.float32)
        weight = (rng.standard_normal([channels, channels, 3, 3]) * 0.1).astype(np.float32)
        # a chain of DEPTH convs, as in a stage: the layout changes around it are paid once
        fp32 = ([node("Conv", [f"y{i}" if i else "x", "w"], [f"y{i + 1}" if i + 1 < DEPTH else "y"],
                      pads=[1, 1, 1, 1]) for i in range(DEPTH)], ["x", "w"], {"x": x, "w": weight})
        q_weight = np.clip(np.round(weight / (np.abs(weight).max() / 127)), -127, 127).astype(np.int8)
        consts = {"xs": np.array(0.02, np.float32), "xz": np.array(128, np.uint8),
                  "ws": np.array(np.abs(weight).max() / 127, np.float32), "wz": np.array(0, np.int8),
                  "ys": np.array(0.05, np.float32), "yz": np.array(128, np.uint8)}
        int8 = ([node("Constant", [], [name], value=numpy_helper.from_array(v, name)) for name, v in consts.items()]
                + [node("QLinearConv", [f"y{i}" if i else "x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                        [f"y{i + 1}" if i + 1 < DEPTH else "y"], pads=[1, 1, 1, 1]) for i in range(DEPTH)],
                ["x", "w"], {"x": rng.randint(0, 256, x.shape).astype(np.uint8), "w": q_weight})
        out.append((f"{DEPTH} x 3x3 conv, {channels} -> {channels} channels, {h}x{w}",
                    DEPTH * channels * channels * 9 * h * w,
                    fp32, int8))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--places", type=int, default=22000, help="boundary places K (default 22000)")
    parser.add_argument("--size", default="1024x2048", help="HxW of the label map (default 1024x2048)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--convs", action="store_true", help="time int8 against fp32 convolutions instead")
    args = parser.parse_args(argv)
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r} is not HxW")
    if args.threads < 1 or args.places < 1 or args.repeats < 1 or h < 16:
        parser.error("--threads, --places and --repeats must be >= 1, H >= 16")
    import onnxruntime as ort
    if args.convs:
        print(f"onnxruntime {ort.__version__}, {args.threads} threads, median of {args.repeats}\n")
        print("| convolution | fp32 (ms) | fp32 GOP/s | int8 (ms) | int8 GOP/s | int8 / fp32 throughput |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, macs, fp32, int8 in conv_cases():
            t32, t8 = (time_graph(*graph, args.threads, args.repeats) for graph in (fp32, int8))
            print(f"| {label} | {t32:.2f} | {2e-6 * macs / t32:.0f} | {t8:.2f} | {2e-6 * macs / t8:.0f} "
                  f"| {t32 / t8:.2f} |")
        return 0
    print(f"onnxruntime {ort.__version__}, {args.threads} threads, K = {args.places}, label map 1x{h}x{w}, "
          f"median of {args.repeats}\n")
    print("| op | ms |\n|---|---:|")
    for label, nodes, inputs, feeds in cases(args.places, h, w):
        print(f"| {label} | {time_graph(nodes, inputs, feeds, args.threads, args.repeats):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
