"""GPU rows of the deployment table, on a CUDA machine that has PyTorch but no Paddle.

paddlepaddle-gpu, onnxruntime-gpu and TensorRT are each hundreds of MB, more than can
be shipped to the GPU machine this project borrows, which has PyTorch with cuDNN. So
the GPU rows time the very ONNX graphs `lpsnet export --format onnx` writes, run by
PyTorch through onnx2torch, in two steps:

1. pack (here, with Paddle): export every suite model (ours and upstream PaddleSeg's,
   the same list as `lpsnet bench`) to ONNX at each size, fixed shape, argmax output
   with the dense upsample + argmax (the sparse argmax of the CPU exports is
   data-dependent and syncs with the host; on a GPU the dense form costs ~0.1 ms),
   then ONNX Runtime's basic graph optimisations (constant folding, conv + bias and
   batch-norm fusion), as the paper's onnx-simplifier step before TensorRT, and
   SAME auto-padding written out as explicit pads (onnx2torch lacks it).
   The float weights are dropped from the files (speed does not depend on their
   values; the pack stays a few MB) and their shapes kept; manifest.json holds
   params and MACs as counted on the Paddle model:

       python benchmarks/gpu_speed.py pack --out benchmarks/results/gpu_pack

2. run (on the GPU machine; needs torch, onnx, onnx2torch, onnxruntime): refill the
   weights with random values (He-scaled), convert to PyTorch, check the conversion
   against ONNX Runtime on the CPU (argmax agreement, same weights and input), then
   time batch 1 in fp32 (TF32 off: comparable with the paper's TensorRT FP32), TF32
   and fp16 autocast, each replayed as one CUDA graph (no Python launch overhead, as
   an engine would run it); median and spread of per-replay CUDA-event times after
   a warm-up, FPS, and the GPU's matmul peak of each precision measured in the same
   run for each model's FLOP floor:

       python benchmarks/gpu_speed.py run --pack benchmarks/results/gpu_pack --save_dir D

   Writes gpu_speed.json and gpu_speed.md to --save_dir and prints the table.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_SIZES = ("512x1024", "1024x2048")
STRIP_MIN_ELEMENTS = 256
MODES = ("fp32", "tf32", "fp16")


# ---------------------------------------------------------------- step 1: pack (Paddle)

def strip_weights(model_proto, min_elements=STRIP_MIN_ELEMENTS):
    """Drop the data of float initializers with >= min_elements values, in place.

    Returns {name: dims} of those dropped; `fill_weights` puts values back."""
    import onnx
    stripped = {}
    for init in model_proto.graph.initializer:
        numel = 1
        for d in init.dims:
            numel *= int(d)
        if init.data_type == onnx.TensorProto.FLOAT and numel >= min_elements:
            stripped[init.name] = [int(d) for d in init.dims]
            init.ClearField("raw_data")
            init.ClearField("float_data")
    return stripped


def basic_optimized(model_file, out_file):
    """ONNX Runtime's hardware-independent graph optimisations (constant folding, conv +
    bias / batch-norm fusion, identity removal), as an inference engine applies them;
    saved as a plain ONNX model to out_file (returned)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = out_file
    options.log_severity_level = 3
    ort.InferenceSession(model_file, options, providers=["CPUExecutionProvider"])
    return out_file


def explicit_pads(model_proto):
    """Rewrite auto_pad=SAME_UPPER/SAME_LOWER (which onnx2torch does not take) as
    explicit pads, from the fixed shapes shape inference gives; in place."""
    import onnx
    from onnx import helper
    inferred = onnx.shape_inference.infer_shapes(model_proto)
    shapes = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input):
        shapes[info.name] = [d.dim_value for d in info.type.tensor_type.shape.dim]
    for node in model_proto.graph.node:
        attrs = {a.name: a for a in node.attribute}
        mode = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
        if mode not in ("SAME_UPPER", "SAME_LOWER"):
            continue
        spatial = shapes.get(node.input[0], [])[2:]
        if node.op_type == "Conv":
            kernel = list(attrs["kernel_shape"].ints) if "kernel_shape" in attrs else None
            if kernel is None:
                weight = next(i for i in model_proto.graph.initializer if i.name == node.input[1])
                kernel = list(weight.dims[2:])
        else:
            kernel = list(attrs["kernel_shape"].ints)
        if not spatial or not all(spatial):
            raise ValueError(f"{node.name}: no static input shape to make {mode} padding explicit")
        strides = list(attrs["strides"].ints) if "strides" in attrs else [1] * len(kernel)
        dilations = list(attrs["dilations"].ints) if "dilations" in attrs else [1] * len(kernel)
        begin, end = [], []
        for size, k, st, dl in zip(spatial, kernel, strides, dilations):
            out = -(-size // st)
            total = max((out - 1) * st + (k - 1) * dl + 1 - size, 0)
            small, large = total // 2, total - total // 2
            begin.append(small if mode == "SAME_UPPER" else large)
            end.append(large if mode == "SAME_UPPER" else small)
        keep = [a for a in node.attribute if a.name not in ("auto_pad", "pads")]
        del node.attribute[:]
        node.attribute.extend(keep + [helper.make_attribute("pads", begin + end)])
    return model_proto


def pack(args):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import onnx

    from paddleseg_lpsnet.deploy.export import export_model
    from paddleseg_lpsnet.deploy.suite import available_models, build_component, parse_size
    from paddleseg_lpsnet.utils.flops import count_macs, count_params

    models = available_models()
    keys = args.models or list(models)
    unknown = [k for k in keys if k not in models]
    if unknown:
        raise SystemExit(f"Unknown suite models {unknown}; available: {sorted(models)}")
    sizes = [parse_size(s) for s in args.sizes]
    os.makedirs(args.out, exist_ok=True)
    entries = []
    for key in keys:
        spec = models[key]
        model = build_component(spec.spec)
        params = count_params(model)
        for h, w in sizes:
            shape = [1, 3, h, w]
            with tempfile.TemporaryDirectory(prefix="lpsnet-gpu-pack-") as tmp:
                config = export_model(model, tmp, output_op="argmax", input_shape=shape, format="onnx",
                                      sparse_argmax=False)
                proto = onnx.load(basic_optimized(config.model_file, os.path.join(tmp, "basic.onnx")))
            explicit_pads(proto)
            stripped = strip_weights(proto)
            name = f"{key}_{h}x{w}.onnx"
            onnx.save(proto, os.path.join(args.out, name))
            entries.append({"key": key, "model": spec.name, "family": spec.family, "ours": spec.ours,
                            "file": name, "input_shape": shape, "params": params,
                            "macs": count_macs(model, shape)["total"], "stripped": stripped})
            print(f"packed {name}: {len(stripped)} weight tensors stripped", flush=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"created": time.strftime("%Y-%m-%d %H:%M:%S"), "entries": entries}, f, indent=1)
    print(f"wrote {len(entries)} models to {args.out}")


# ---------------------------------------------------------------- step 2: run (PyTorch)

def fill_weights(model_proto, stripped, seed=0):
    """Give every stripped initializer random values: He-normal for >= 2-D tensors
    (conv / matmul weights), uniform [0.5, 1.5) for 1-D ones (scales, biases,
    batch-norm statistics: positive, so variances stay valid)."""
    import numpy as np
    from onnx import numpy_helper
    rng = np.random.RandomState(seed)
    by_name = {init.name: init for init in model_proto.graph.initializer}
    for name, dims in stripped.items():
        if len(dims) >= 2:
            fan_in = int(np.prod(dims[1:]))
            value = rng.standard_normal(dims) * np.sqrt(2.0 / max(fan_in, 1))
        else:
            value = rng.uniform(0.5, 1.5, dims)
        by_name[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))
    return model_proto


def _summary(times_ms):
    ordered = sorted(times_ms)
    q = lambda p: ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]  # noqa: E731
    median = statistics.median(ordered)
    return {"median_ms": median, "p10_ms": q(0.1), "p90_ms": q(0.9), "fps": 1000.0 / median, "runs": len(ordered)}


def _set_tf32(torch, enabled):
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def _event_times(torch, fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def matmul_peaks(torch, n=8192, warmup=3, repeats=10):
    """TFLOP/s of an n^3 matmul on random data: fp32 (TF32 off), tf32, fp16 (best of the runs)."""
    peaks = {}
    for mode in MODES:
        _set_tf32(torch, mode == "tf32")
        dtype = torch.float16 if mode == "fp16" else torch.float32
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        times = _event_times(torch, lambda: torch.matmul(a, b), warmup, repeats)
        peaks[mode] = 2.0 * n ** 3 / (min(times) / 1e3) / 1e12
        del a, b
    _set_tf32(torch, False)
    return peaks


def host_shape_arguments(torch, net):
    """onnx2torch's ops read shapes, axes, pads and resize sizes / scales with .tolist(),
    a device-to-host copy that CUDA-graph capture forbids. In these fixed-shape,
    constant-folded graphs those arguments are constants, so each op gets host copies
    of its non-float tensor arguments (and all of a Resize's), taken on its first call,
    which is an uncaptured warm-up run."""
    def hook(module, args):
        cached = getattr(module, "_host_args", None)
        if cached is None:
            resize = type(module).__name__.startswith("OnnxResize")
            cached = {i: a.cpu() for i, a in enumerate(args)
                      if i > 0 and torch.is_tensor(a) and (resize or not a.is_floating_point())}
            module._host_args = cached
        return tuple(cached.get(i, a) for i, a in enumerate(args)) if cached else None

    for module in net.modules():
        if not list(module.children()):
            module.register_forward_pre_hook(hook)
    return net


def _runner(torch, net, x, mode):
    """A no-argument callable running net on x in `mode`, as one CUDA graph if it can be
    captured (else eager); returns (callable, output of one run, "graph"|"eager")."""
    def forward():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=(mode == "fp16")):
            return net(x)

    _set_tf32(torch, mode == "tf32")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            forward()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = forward()
        graph.replay()
        torch.cuda.synchronize()
        return graph.replay, out, "graph"
    except Exception as exc:  # a converted op that cannot be captured: time it eagerly
        print(f"    CUDA graph capture failed ({type(exc).__name__}: {str(exc)[:120]}); timing eagerly", flush=True)
        torch.cuda.synchronize()
        return forward, forward(), "eager"


def kernel_profile(torch, fn, replays=10, top=12):
    """The GPU kernels of `replays` runs of fn, by total time (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(replays):
            fn()
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=top, max_name_column_width=70)


def run(args):
    manifest_file = os.path.join(args.pack, "manifest.json")
    if not os.path.isfile(manifest_file):
        raise SystemExit(f"No pack at {args.pack} (no manifest.json): run `python benchmarks/gpu_speed.py pack "
                         f"--out {args.pack}` where Paddle is installed, and bring that folder here.")
    import numpy as np
    import onnx
    import onnxruntime as ort
    try:
        import torch
        from onnx2torch import convert
    except ImportError as exc:
        raise SystemExit(f"run needs PyTorch and onnx2torch ({exc}): pip install torch onnx2torch") from exc

    if not torch.cuda.is_available():
        raise SystemExit("run needs a CUDA GPU (torch.cuda.is_available() is False).")
    with open(manifest_file) as f:
        manifest = json.load(f)
    props = torch.cuda.get_device_properties(0)
    machine = {"gpu": torch.cuda.get_device_name(0), "sms": props.multi_processor_count,
               "memory_gib": round(props.total_memory / 2 ** 30, 1), "torch": torch.__version__,
               "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
               "onnx2torch": _version("onnx2torch"), "onnxruntime": ort.__version__}
    torch.backends.cudnn.benchmark = True
    peaks = matmul_peaks(torch)
    print(f"{machine['gpu']}: matmul peaks " + ", ".join(f"{m} {p:.1f} TFLOP/s" for m, p in peaks.items()),
          flush=True)
    rows = []
    for entry in manifest["entries"]:
        if args.models and entry["key"] not in args.models:
            continue
        proto = fill_weights(onnx.load(os.path.join(args.pack, entry["file"])), entry["stripped"])
        shape = entry["input_shape"]
        x_np = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
        row = {k: entry[k] for k in ("key", "model", "family", "ours", "input_shape", "params", "macs")}
        try:
            net = host_shape_arguments(torch, convert(proto).cuda().eval())
        except Exception as exc:
            row["error"] = f"onnx2torch: {type(exc).__name__}: {str(exc)[:200]}"
            rows.append(row)
            print(f"  {entry['file']}: {row['error']}", flush=True)
            continue
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        ref = session.run(None, {session.get_inputs()[0].name: x_np})[0]
        x = torch.from_numpy(x_np).cuda()
        row["modes"] = {}
        for mode in MODES:
            try:
                fn, out, how = _runner(torch, net, x, mode)
                labels = out.detach().cpu().numpy().reshape(ref.shape)
                stats = _summary(_event_times(torch, fn, args.warmup, args.repeats))
                floor_ms = 2.0 * entry["macs"] / (peaks[mode] * 1e12) * 1e3
                stats.update(how=how, agreement_vs_ort_fp32=float((labels == ref).mean()),
                             floor_ms=floor_ms, pct_of_floor=100.0 * floor_ms / stats["median_ms"])
                row["modes"][mode] = stats
                if args.profile and mode == "fp32":
                    print(kernel_profile(torch, fn), flush=True)
                print(f"  {entry['model']} {shape[2]}x{shape[3]} {mode}: median {stats['median_ms']:.3f} ms "
                      f"({stats['fps']:.0f} FPS, {how}), agreement with ORT {stats['agreement_vs_ort_fp32']:.5f}",
                      flush=True)
            except Exception as exc:
                row["modes"][mode] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
                print(f"  {entry['model']} {mode}: {row['modes'][mode]['error']}", flush=True)
        _set_tf32(torch, False)
        rows.append(row)
        del net
        torch.cuda.empty_cache()
    result = {"machine": machine, "matmul_peak_tflops": peaks, "rows": rows,
              "config": {"warmup": args.warmup, "repeats": args.repeats, "pack_created": manifest.get("created")}}
    text = to_markdown(result)
    os.makedirs(args.save_dir, exist_ok=True)
    with open(os.path.join(args.save_dir, "gpu_speed.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.save_dir, "gpu_speed.md"), "w") as f:
        f.write(text)
    print(text)


def _version(module):
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:
        return "?"


def to_markdown(result):
    m, peaks = result["machine"], result["matmul_peak_tflops"]
    lines = [f"GPU: {m['gpu']} ({m['sms']} SMs, {m['memory_gib']} GiB), PyTorch {m['torch']} (CUDA {m['cuda']}, "
             f"cuDNN {m['cudnn']}) via onnx2torch {m['onnx2torch']}; batch 1, each run one CUDA-graph replay, "
             f"median of {result['config']['repeats']} after {result['config']['warmup']} warm-up.",
             "Matmul peak in this run (8192^3): " + ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in peaks.items())
             + ". Floor = 2 x MACs / that peak. Random weights (speed does not depend on them); the last column "
             "is the share of pixels whose label equals ONNX Runtime's on the CPU for the same weights and input "
             "(the conversion check; tf32 / fp16 agreement of random-weight networks says nothing about trained "
             "ones and is only in the JSON).", ""]
    sizes = []
    for row in result["rows"]:
        if tuple(row["input_shape"]) not in sizes:
            sizes.append(tuple(row["input_shape"]))
    for shape in sizes:
        lines += [f"### 1x3x{shape[2]}x{shape[3]}", "",
                  "| model | params (M) | GMACs | fp32 ms | fp32 spread | fp32 FPS | fp32 % floor | tf32 ms | fp16 ms "
                  "| fp16 FPS | fp32 argmax = ORT |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in result["rows"]:
            if tuple(row["input_shape"]) != shape:
                continue
            head = f"| {row['model']} | {row['params'] / 1e6:.2f} | {row['macs'] / 1e9:.2f} | "
            if "error" in row:
                lines.append(head + f"{row['error']} |||||||")
                continue
            modes = row["modes"]

            def cell(mode, key, spec):
                stats = modes.get(mode, {})
                return format(stats[key], spec) if key in stats else stats.get("error", "-")[:40]
            spread = f"{cell('fp32', 'p10_ms', '.3f')}-{cell('fp32', 'p90_ms', '.3f')}"
            lines.append(head + " | ".join([
                cell("fp32", "median_ms", ".3f"), spread, cell("fp32", "fps", ".0f"), cell("fp32", "pct_of_floor", ".0f"),
                cell("tf32", "median_ms", ".3f"), cell("fp16", "median_ms", ".3f"), cell("fp16", "fps", ".0f"),
                cell("fp32", "agreement_vs_ort_fp32", ".5f")]) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("pack", help="export the suite to weight-stripped ONNX graphs (needs Paddle)")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "gpu_pack"))
    p.add_argument("--models", nargs="+", default=None, help="suite keys (default: all available)")
    p.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES))
    r = sub.add_parser("run", help="time a pack on a CUDA GPU with PyTorch (no Paddle needed)")
    r.add_argument("--pack", default=os.path.join(ROOT, "benchmarks", "results", "gpu_pack"))
    r.add_argument("--save_dir", default=os.path.join(ROOT, "benchmarks", "results", "gpu_speed"))
    r.add_argument("--models", nargs="+", default=None)
    r.add_argument("--warmup", type=int, default=20)
    r.add_argument("--repeats", type=int, default=100)
    r.add_argument("--profile", action="store_true", help="print the fp32 run's GPU kernels by time")
    args = parser.parse_args(argv)
    return pack(args) if args.step == "pack" else run(args)


if __name__ == "__main__":
    sys.exit(main())
