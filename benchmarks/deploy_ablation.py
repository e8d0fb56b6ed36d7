"""What each deployment choice is worth: LPS-Net exported and run in several ways, timed side by side.

Every variant is exported and loaded first; then the timed runs go round-robin
over the variants (`--rounds` rounds of `--repeats` runs each), so that a change
of machine load touches every variant alike. The medians feed benchmarks/NOTES.md.

    python benchmarks/deploy_ablation.py                                 # LPS-Net-M, 1024x2048, wall clock
    python benchmarks/deploy_ablation.py --clock cpu --cpu_threads 1     # on a machine other jobs use
    python benchmarks/deploy_ablation.py --variant S --size 512x1024 --only sparse dense upstream_paddle
    git show HEAD~1:paddleseg_lpsnet/deploy/sparse_argmax.py > /tmp/sparse_before.py
    python benchmarks/deploy_ablation.py --only sparse network --sparse_from /tmp/sparse_before.py

The networks' weights are random (seeded by --seed, default 0). The sparse argmax's
work grows with the class boundaries of the labels, and a random network's depend on
its seed: the header prints the share of boundary places (row pairs whose labels
differ) so that runs with different seeds can be read side by side.

Variants (name: what changes, against `sparse` = our default export on onnxruntime):
  upstream_paddle   PaddleSeg's LPSNet, Paddle Inference (oneDNN): the issue's reference
  upstream_ort      PaddleSeg's LPSNet, onnxruntime
  dense_paddle      ours, dense argmax, Paddle Inference
  sparse_paddle     ours, sparse argmax, Paddle Inference
  no_bn_fold        ours, BN left unfolded at export (dense argmax), onnxruntime
  dense             ours, dense argmax (upsample all logits), onnxruntime
  sparse            ours, sparse argmax, onnxruntime (the default export)
  sparse_extended   sparse, onnxruntime graph optimisation "extended" (no NCHWc layout)
  sparse_basic      sparse, onnxruntime graph optimisation "basic"
  network           ours without the final upsampling and argmax: logits at 1/16 (the network alone)
  sparse_from       sparse, with the sparse argmax of the file given by --sparse_from (an older version)
  sparse_dynamic    sparse, exported for any input size (`lpsnet export` without --input_shape)
"""
import argparse
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time

import numpy as np
from common import ROOT, add_timing_arguments, main_with_errors, timing_from_args

VARIANTS = {  # name: (ours?, backend, export options, predictor options)
    "upstream_paddle": (False, "paddle", {}, {}),
    "upstream_ort": (False, "onnxruntime", {}, {}),
    "dense_paddle": (True, "paddle", {"sparse_argmax": False}, {}),
    "sparse_paddle": (True, "paddle", {}, {}),
    "no_bn_fold": (True, "onnxruntime", {"sparse_argmax": False, "deploy_form": False}, {}),
    "dense": (True, "onnxruntime", {"sparse_argmax": False}, {}),
    "sparse": (True, "onnxruntime", {}, {}),
    "sparse_extended": (True, "onnxruntime", {}, {"optimization_level": "extended"}),
    "sparse_basic": (True, "onnxruntime", {}, {"optimization_level": "basic"}),
    "network": (True, "onnxruntime", {"output_op": "none", "lowres": True}, {}),
    "sparse_from": (True, "onnxruntime", {}, {}),
    "sparse_dynamic": (True, "onnxruntime", {"dynamic": True}, {}),
}


def build_models(variant, seed=0):
    """(ours, upstream) LPS-Net of `variant`, each with random weights from paddle.seed(seed)."""
    from paddleseg_lpsnet.deploy.suite import SUITE_MODELS, build_component
    specs = {m.key: m for m in SUITE_MODELS}
    return tuple(build_component(specs[key].spec, seed=seed)
                 for key in (f"lpsnet_{variant.lower()}", f"upstream_lpsnet_{variant.lower()}"))


def boundary_share(model, batch):
    """Share of (row pair, column) places whose two W-resized rows argmax differently:
    the places the sparse argmax works on."""
    import paddle
    import paddle.nn.functional as F
    with paddle.no_grad():
        logit = model.forward_lowres(paddle.to_tensor(batch))
        wide = F.interpolate(logit, size=[logit.shape[2], batch.shape[3]], mode="bilinear",
                             align_corners=model.align_corners)
        labels = wide.argmax(1).numpy()
    return float((labels[:, :-1] != labels[:, 1:]).mean())


def load_sparse_argmax(path):
    """The sparse_upsampled_argmax defined in the file `path`; SystemExit if it has none."""
    spec = importlib.util.spec_from_file_location("sparse_argmax_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "sparse_upsampled_argmax", None)):
        raise SystemExit(f"--sparse_from {path} defines no sparse_upsampled_argmax(logit, size, align_corners)")
    return module.sparse_upsampled_argmax


@contextlib.contextmanager
def sparse_argmax_from(function):
    """Export with `function` as the sparse argmax (None: the installed one)."""
    import paddleseg_lpsnet.deploy.export as export
    if function is None:
        yield
        return
    installed = export.sparse_upsampled_argmax
    export.sparse_upsampled_argmax = function
    try:
        yield
    finally:
        export.sparse_upsampled_argmax = installed


def load_variants(names, ours, upstream, shape, threads, workdir, log, sparse_from=None):
    from paddleseg_lpsnet.deploy import create_predictor, export_model
    from paddleseg_lpsnet.deploy.benchmark import lowres_network
    predictors = {}
    for name in names:
        is_ours, backend, export_options, predictor_options = VARIANTS[name]
        options = dict(export_options)
        output_op = options.pop("output_op", "argmax")
        model = ours if is_ours else upstream
        if options.pop("lowres", False):
            model = lowres_network(ours)
        input_shape = None if options.pop("dynamic", False) else shape
        folder = os.path.join(workdir, name)
        start = time.perf_counter()
        with sparse_argmax_from(sparse_from if name == "sparse_from" else None):
            config = export_model(model, folder, output_op=output_op, input_shape=input_shape,
                                  format="onnx" if backend == "onnxruntime" else "paddle", **options)
        predictors[name] = create_predictor(config, backend=backend, cpu_threads=threads, **predictor_options)
        log(f"  {name}: exported and loaded in {time.perf_counter() - start:.0f} s")
    return predictors


def agreement(predictors, shape, seed=0):
    """(reference, {variant: label agreement}) of our argmax variants with `dense`
    (or, without it, the first of them), on one input."""
    batch = np.random.RandomState(seed + 1).standard_normal(shape).astype("float32")
    ours = [n for n in predictors if VARIANTS[n][0] and VARIANTS[n][2].get("output_op", "argmax") == "argmax"]
    if not ours:
        return None, {}
    ref_name = "dense" if "dense" in ours else ours[0]
    ref = predictors[ref_name].run(batch)
    return ref_name, {n: float((predictors[n].run(batch) == ref).mean()) for n in ours if n != ref_name}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["S", "M", "L"], default="M", help="LPS-Net variant (default M)")
    parser.add_argument("--size", default="1024x2048", help="input HxW (default 1024x2048)")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS),
                        default=[v for v in VARIANTS if v != "sparse_from"],
                        help="variants to run (default: all but sparse_from)")
    parser.add_argument("--sparse_from", default=None, metavar="FILE",
                        help="a sparse_argmax.py (e.g. an older version) for the sparse_from variant")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and input (default 0)")
    add_timing_arguments(parser)
    parser.add_argument("--save_dir", default=os.path.join(ROOT, "benchmarks", "results", "deploy_ablation"))
    args = parser.parse_args(argv)
    threads, clock = timing_from_args(parser, args)
    if ("sparse_from" in args.only) != (args.sparse_from is not None):
        parser.error("--sparse_from FILE and the sparse_from variant go together")
    if args.sparse_from is not None and not os.path.isfile(args.sparse_from):
        parser.error(f"--sparse_from {args.sparse_from}: no such file")
    sparse_from = load_sparse_argmax(args.sparse_from) if args.sparse_from else None

    from paddleseg_lpsnet.deploy.benchmark import flop_floor_ms, machine_info, measure_gemm_peak, time_round_robin
    from paddleseg_lpsnet.deploy.suite import parse_size
    from paddleseg_lpsnet.utils.flops import count_macs

    h, w = parse_size(args.size)
    shape = [1, 3, h, w]
    ours, upstream = build_models(args.variant, args.seed)
    macs = count_macs(ours, shape)["total"]
    batch = np.random.RandomState(args.seed).standard_normal(shape).astype("float32")
    boundaries = boundary_share(ours, batch)
    peak = measure_gemm_peak(threads, 2048 if args.clock == "cpu" else 4096, 5, clock=args.clock)
    print(f"LPS-Net-{args.variant} {args.size}, {threads} threads, {args.clock} clock, seed {args.seed} "
          f"({100 * boundaries:.1f}% boundary places); "
          f"GEMM peak {peak.peak_gflops:.1f} GFLOP/s -> FLOP floor {flop_floor_ms(macs, peak.peak_gflops):.1f} ms")
    with tempfile.TemporaryDirectory(prefix="lpsnet-ablation-") as workdir:
        predictors = load_variants(args.only, ours, upstream, shape, threads, workdir, print, sparse_from)
        runs = time_round_robin(predictors, batch, args.rounds, args.repeats, args.warmup, clock, print)
        reference, agree = agreement(predictors, shape, args.seed)
    peak_after = measure_gemm_peak(threads, peak.n, 5, clock=args.clock)
    best_peak = max(peak.peak_gflops, peak_after.peak_gflops)
    floor = flop_floor_ms(macs, best_peak)
    medians = {n: float(np.median(v)) for n, v in runs.items()}
    base = medians.get("sparse") or next(iter(medians.values()))
    lines = [f"LPS-Net-{args.variant}, input {args.size}, {threads} threads, {args.clock} clock, "
             f"{args.rounds}x{args.repeats} runs per variant; weights seed {args.seed} "
             f"({100 * boundaries:.1f}% boundary places); GEMM peak {best_peak:.1f} GFLOP/s, "
             f"FLOP floor {floor:.1f} ms; {machine_info(threads)['cpu']}, load average {os.getloadavg()[0]:.2f}", "",
             f"| variant | median (ms) | p10-p90 (ms) | vs sparse | % of floor | labels = {reference or 'dense'} |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, value in medians.items():
        v = runs[name]
        lines.append(f"| {name} | {value:.1f} | {np.percentile(v, 10):.1f}-{np.percentile(v, 90):.1f} "
                     f"| {value / base:.2f} | {100 * floor / value:.0f} "
                     f"| {'' if name not in agree else f'{100 * agree[name]:.3f}%'} |")
    table = "\n".join(lines) + "\n"
    print()
    print(table)
    os.makedirs(args.save_dir, exist_ok=True)
    tag = f"lpsnet_{args.variant.lower()}_{args.size}_{args.clock}_seed{args.seed}"
    with open(os.path.join(args.save_dir, f"{tag}.json"), "w") as f:
        json.dump({"variant": args.variant, "input_shape": shape, "threads": threads, "clock": args.clock,
                   "seed": args.seed, "boundary_share": boundaries, "sparse_from": args.sparse_from,
                   "macs": macs, "gemm_peaks": [peak.as_dict(), peak_after.as_dict()], "floor_ms": floor,
                   "runs_ms": runs, "agreement_reference": reference, "agreement": agree,
                   "machine": machine_info(threads)}, f, indent=1)
    with open(os.path.join(args.save_dir, f"{tag}.md"), "w") as f:
        f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main_with_errors(main))
