"""The deployment speed suite behind `lpsnet bench` and benchmarks/deploy_speed.py.

For each model (ours and, built in the same process from paddleseg, upstream's),
each input size and each backend: parameters, GMACs at that size, and the latency
of the exported model (batch 1, `measure_latency`: same export and predictors as
`lpsnet export` / `lpsnet infer`), with the machine's fp32 GEMM peak measured in
the same run, so that every latency can be set against its FLOP floor
(2 x MACs / peak). The result is one JSON-able dict (`run_suite`); `to_markdown`
renders it, machine first, then one table per size, then ours against upstream's
LPS-Net (the ratio the issue's targets are stated in).
"""
import copy
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from paddleseg_lpsnet.deploy.benchmark import flop_floor_ms, gpu_name, machine_info, measure_gemm_peak, measure_latency
from paddleseg_lpsnet.errors import ConfigError, LPSNetError

__all__ = ["SuiteModel", "SUITE_MODELS", "CPU_BACKENDS", "CLOCKS", "DEFAULT_SIZES", "parse_size", "available_models",
           "build_component", "run_suite", "to_markdown", "ours_vs_upstream"]

NUM_CLASSES = 19
CPU_BACKENDS = ("paddle", "onnxruntime")
# How each run is timed: the wall clock, or the CPU time of the calling thread
# (1 thread only: both backends then compute in that thread, and a machine shared
# with other jobs inflates it far less than the wall clock).
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
DEFAULT_SIZES = ("512x1024", "1024x2048")
BACKEND_NAMES = {"paddle": "Paddle Inference", "onnxruntime": "ONNX Runtime"}


@dataclass(frozen=True)
class SuiteModel:
    """One model of the suite.

    Args:
        key (str): Name on the command line (--models).
        name (str): Name in the tables.
        spec (dict): Component spec, {"type": registered name, ...}; nested dicts
            with a `type` are built first (a backbone).
        family (str): Models of one family are compared (ours vs upstream LPS-Net-M).
        ours (bool): A model of this project.
    """
    key: str
    name: str
    spec: dict
    family: str = ""
    ours: bool = False

    def types(self):
        """Every registered name the spec needs."""
        found = []

        def walk(node):
            if isinstance(node, dict):
                if "type" in node:
                    found.append(node["type"])
                for value in node.values():
                    walk(value)
        walk(self.spec)
        return found


def _lpsnet(variant):
    from paddleseg_lpsnet.models.backbones.lpsnet import LPSNET_ARCHS
    arch = LPSNET_ARCHS[variant]
    return [
        SuiteModel(f"lpsnet_{variant.lower()}", f"LPS-Net-{variant} (ours)",
                   {"type": "LPSNetSeg", "backbone": {"type": f"LPSNetBackbone_{variant}"}},
                   f"LPS-Net-{variant}", ours=True),
        SuiteModel(f"upstream_lpsnet_{variant.lower()}", f"LPS-Net-{variant} (PaddleSeg LPSNet)",
                   {"type": "LPSNet", "depths": list(arch["depths"]), "channels": list(arch["channels"]),
                    "scale_ratios": list(arch["scale_ratios"])}, f"LPS-Net-{variant}"),
    ]


SUITE_MODELS = [
    *_lpsnet("S"), *_lpsnet("M"), *_lpsnet("L"),
    SuiteModel("ppliteseg_stdc1", "PP-LiteSeg-T (STDC1)", {"type": "PPLiteSeg", "backbone": {"type": "STDC1"}},
               "PP-LiteSeg"),
    SuiteModel("stdcseg_stdc1", "STDC1-Seg", {"type": "STDCSeg", "backbone": {"type": "STDC1"}}, "STDC"),
    SuiteModel("bisenetv2", "BiSeNetV2", {"type": "BiSeNetV2"}, "BiSeNetV2"),
    SuiteModel("fasterseg", "FasterSeg student (ours)", {"type": "FasterSegStudent"}, "FasterSeg", ours=True),
    SuiteModel("pmsdsen", "PMSDSEN (ours)", {"type": "PMSDSENet"}, "PMSDSEN", ours=True),
]


def _registered(name):
    from paddleseg_lpsnet.utils.config import find_component
    try:
        find_component(name)
        return True
    except ConfigError:
        return False


def available_models(models=SUITE_MODELS):
    """The suite models whose components are registered in this install, by key."""
    import paddleseg_lpsnet  # noqa: F401  (registers ours)
    return {m.key: m for m in models if all(_registered(t) for t in m.types())}


def build_component(spec, num_classes=NUM_CLASSES, seed=None):
    """Build a spec dict (nested specs first) in eval mode; the top level gets num_classes.

    With `seed`, paddle.seed(seed) first: the random weights, and with them the work of
    the sparse argmax (it follows the labels' class boundaries), are the same in every run
    and do not depend on what was built before.
    """
    from paddleseg_lpsnet.utils.config import find_component
    if seed is not None:
        import paddle
        paddle.seed(seed)

    def build(node, top):
        kwargs = {k: build(v, False) if isinstance(v, dict) and "type" in v else copy.deepcopy(v)
                  for k, v in node.items() if k != "type"}
        if top:
            kwargs["num_classes"] = num_classes
        return find_component(node["type"], "the benchmark suite")(**kwargs)

    model = build(spec, True)
    model.eval()
    return model


def parse_size(text):
    """(H, W) of "HxW" (e.g. 1024x2048); ConfigError otherwise."""
    parts = str(text).lower().split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"Input size {text!r} is not HxW (e.g. 1024x2048).") from None
    if h < 1 or w < 1:
        raise ConfigError(f"Input size {text!r} must be positive.")
    return h, w


@dataclass
class _Context:
    sizes: List[tuple]
    backends: List[str]
    repeats: int
    warmup: int
    cpu_threads: Optional[int]
    device: str
    export_options: dict
    clock: str
    seed: int = 0
    log: Callable = print
    rows: List[dict] = field(default_factory=list)


def _model_rows(model_spec, model, ctx):
    """Rows of one model: every size x backend."""
    from paddleseg_lpsnet.utils.flops import count_macs, count_params
    params = count_params(model)
    for h, w in ctx.sizes:
        shape = [1, 3, h, w]
        macs = count_macs(model, shape)["total"]
        for backend in ctx.backends:
            row = {"key": model_spec.key, "model": model_spec.name, "family": model_spec.family,
                   "ours": model_spec.ours, "input_shape": shape, "backend": backend, "device": ctx.device,
                   "params": params, "macs": macs}
            start = time.perf_counter()
            try:
                stats = measure_latency(model, shape, backend=backend, cpu_threads=ctx.cpu_threads,
                                        warmup=ctx.warmup, repeats=ctx.repeats, device=ctx.device,
                                        export_options=ctx.export_options if model_spec.ours else None,
                                        clock=CLOCKS[ctx.clock], seed=ctx.seed)
                row["latency"] = stats.as_dict()
            except (LPSNetError, RuntimeError, ValueError, NotImplementedError) as exc:
                row["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc) else ''}"
            ctx.rows.append(row)
            took = time.perf_counter() - start
            what = (f"median {row['latency']['median_ms']:.1f} ms" if "latency" in row else row["error"])
            ctx.log(f"  {model_spec.name} {h}x{w} {backend}: {what} ({took:.0f} s with export)")


def run_suite(models=None, sizes=DEFAULT_SIZES, backends=CPU_BACKENDS, repeats=10, warmup=3, cpu_threads=None,
              device="cpu", gemm_n=4096, gemm_repeats=5, export_options=None, clock="wall", suite=SUITE_MODELS,
              seed=0, log=print):
    """Measure the suite; returns {"machine", "gemm_peaks", "peak_gflops", "rows", "config"}.

    Args:
        models (list[str], optional): Keys of `suite` to run. Default: every available one.
        sizes (list[str]): Input sizes "HxW". Default: 512x1024 and 1024x2048.
        backends (list[str]): paddle and/or onnxruntime.
        repeats, warmup (int): Timed and untimed runs per model, size and backend.
        cpu_threads (int, optional): Threads of backends and GEMM. Default: all usable cores.
        device (str): cpu or gpu.
        gemm_n, gemm_repeats (int): The GEMM peak's matrix size and runs (measured
            before and after the models; the better one is the peak).
        export_options (dict, optional): export_model arguments for our models (e.g.
            sparse_argmax=False to time the dense argmax).
        clock (str): "wall" (latency), or "cpu": CPU time of the calling thread, with
            cpu_threads 1 only, for comparisons on a machine shared with other jobs;
            the GEMM peak is then timed by CPU time too.
        suite (list[SuiteModel]): The models to choose from.
        seed (int): Seed of each model's random weights (`build_component`'s) and of
            the input.
        log (callable): Progress lines.
    """
    from paddleseg_lpsnet.deploy.predictor import BACKENDS, default_cpu_threads
    available = available_models(suite)
    keys = list(models) if models else list(available)
    unknown = [k for k in keys if k not in {m.key for m in suite}]
    if unknown:
        raise ConfigError(f"Unknown model(s) {unknown}; the suite has {', '.join(m.key for m in suite)}.")
    missing = [k for k in keys if k not in available]
    if missing and models:
        raise ConfigError(f"Model(s) {missing} are not registered in this install (their components are missing).")
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise ConfigError(f"Unknown backend(s) {bad}; expected {', '.join(BACKENDS)}.")
    if repeats < 1 or warmup < 0:
        raise ConfigError(f"repeats must be >= 1 and warmup >= 0; got {repeats}, {warmup}.")
    threads = int(cpu_threads or default_cpu_threads())
    if device == "gpu" and gpu_name() is None:
        raise ConfigError("--device gpu: Paddle sees no CUDA GPU here (a CPU build of paddlepaddle, or no device).")
    if clock not in CLOCKS:
        raise ConfigError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}.")
    if clock == "cpu" and (threads != 1 or device != "cpu"):
        raise ConfigError(f"The cpu clock times the calling thread: it needs --cpu_threads 1 on CPU "
                          f"(got {threads} threads on {device}).")
    ctx = _Context([parse_size(s) for s in sizes], list(backends), repeats, warmup, threads, device,
                   dict(export_options or {}), clock, int(seed), log)
    peaks = []
    if device == "cpu":
        log(f"fp32 GEMM peak ({gemm_n}^3, {threads} threads)...")
        peaks.append(measure_gemm_peak(threads, gemm_n, gemm_repeats, clock=clock))
    for key in keys:
        spec = available[key]
        log(f"{spec.name}:")
        _model_rows(spec, build_component(spec.spec, seed=ctx.seed), ctx)
    if device == "cpu":
        peaks.append(measure_gemm_peak(threads, gemm_n, gemm_repeats, clock=clock))
        log("GEMM peak before / after: " + " / ".join(f"{p.peak_gflops:.1f}" for p in peaks) + " GFLOP/s")
    peak = max(p.peak_gflops for p in peaks) if peaks else None
    for row in ctx.rows:
        if peak and "latency" in row:
            row["floor_ms"] = flop_floor_ms(row["macs"], peak)
            row["floor_pct"] = 100.0 * row["floor_ms"] / row["latency"]["median_ms"]
    return {"machine": machine_info(threads), "gemm_peaks": [p.as_dict() for p in peaks], "peak_gflops": peak,
            "config": {"models": keys, "sizes": list(sizes), "backends": list(backends), "repeats": repeats,
                       "warmup": warmup, "device": device, "batch": 1, "precision": "fp32", "seed": int(seed),
                       "export_options": ctx.export_options, "clock": clock},
            "rows": ctx.rows}


def _size_text(shape):
    return "x".join(str(d) for d in shape)


def ours_vs_upstream(result):
    """Per LPS-Net variant and size: our best backend against upstream's Paddle Inference (same run)."""
    rows = [r for r in result["rows"] if "latency" in r]
    out = []
    for ours in rows:
        if not ours["ours"]:
            continue
        same = [r for r in rows if r["family"] == ours["family"] and r["input_shape"] == ours["input_shape"]]
        best = min((r for r in same if r["ours"]), key=lambda r: r["latency"]["median_ms"])
        upstream = {r["backend"]: r for r in same if not r["ours"]}
        if best is not ours or not upstream:
            continue
        entry = {"family": ours["family"], "input_shape": ours["input_shape"], "ours_backend": best["backend"],
                 "ours_ms": best["latency"]["median_ms"], "ours_floor_pct": best.get("floor_pct")}
        for backend, r in upstream.items():
            entry[f"upstream_{backend}_ms"] = r["latency"]["median_ms"]
            entry[f"ratio_vs_upstream_{backend}"] = best["latency"]["median_ms"] / r["latency"]["median_ms"]
        out.append(entry)
    return out


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _machine_lines(result):
    m = result["machine"]
    lines = [f"- Machine: {m['cpu']} ({', '.join(m['cpu_flags']) or 'no AVX'}), {m['usable_cores']} usable cores, "
             f"{m['threads_used']} threads used" + (f", GPU {m['gpu']}" if m.get("gpu") else "") + "."]
    if result["gemm_peaks"]:
        p = result["gemm_peaks"]
        lines.append(f"- fp32 peak: {result['peak_gflops']:.1f} GFLOP/s (numpy float32 {p[0]['n']}^3 GEMM, "
                     f"{p[0]['threads']} threads, best run; measured before and after the models: "
                     + " / ".join(f"{x['peak_gflops']:.1f}" for x in p) + ").")
    load = m.get("load_average")
    lines.append(f"- Paddle {m['paddle']}, PaddleSeg {m['paddleseg']}, ONNX Runtime {m['onnxruntime']}, "
                 f"paddle2onnx {m['paddle2onnx']}, Python {m['python']}; {m['date']}"
                 + (f"; load average {load[0]:.2f} at the end" if load else "") + ".")
    c = result["config"]
    timed = ("CPU time of the calling thread (1 thread), not wall-clock latency"
             if c.get("clock") == "cpu" else "wall clock")
    lines.append(f"- Batch 1, fp32, {c['warmup']} warm-up runs then {c['repeats']} timed runs, {timed}; "
                 "latency = median, spread = 10th-90th percentile; FLOP floor = 2 x MACs (convolutions) / peak.")
    return lines


def to_markdown(result):
    """The result as Markdown: machine, one table per size, ours vs upstream."""
    lines = ["## Deployment speed", ""] + _machine_lines(result)
    shapes = []
    for row in result["rows"]:
        if row["input_shape"] not in shapes:
            shapes.append(row["input_shape"])
    for shape in shapes:
        lines += ["", f"### Input {_size_text(shape)}", "",
                  "| model | backend | params (M) | GMACs | latency (ms) | spread (ms) | FPS | floor (ms) "
                  "| % of floor |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in (r for r in result["rows"] if r["input_shape"] == shape):
            head = (f"| {r['model']} | {BACKEND_NAMES.get(r['backend'], r['backend'])} | {r['params'] / 1e6:.2f} "
                    f"| {r['macs'] / 1e9:.2f} ")
            if "latency" not in r:
                lines.append(head + f"| failed: {r['error']} | | | | |")
                continue
            lat = r["latency"]
            lines.append(head + f"| {lat['median_ms']:.1f} | {lat['p10_ms']:.1f}-{lat['p90_ms']:.1f} "
                                f"| {lat['fps']:.2f} | {_fmt(r.get('floor_ms'), '.1f')} "
                                f"| {_fmt(r.get('floor_pct'), '.0f')} |")
    pairs = ours_vs_upstream(result)
    if pairs:
        lines += ["", "### Ours against PaddleSeg's `LPSNet` (same run)", "",
                  "| model | input | ours: best backend | ours (ms) | % of floor | upstream Paddle Inference (ms) "
                  "| ratio | upstream ONNX Runtime (ms) | ratio |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for p in pairs:
            lines.append(f"| {p['family']} | {_size_text(p['input_shape'][2:])} "
                         f"| {BACKEND_NAMES.get(p['ours_backend'], p['ours_backend'])} | {p['ours_ms']:.1f} "
                         f"| {_fmt(p['ours_floor_pct'], '.0f')} | {_fmt(p.get('upstream_paddle_ms'), '.1f')} "
                         f"| {_fmt(p.get('ratio_vs_upstream_paddle'), '.2f')} "
                         f"| {_fmt(p.get('upstream_onnxruntime_ms'), '.1f')} "
                         f"| {_fmt(p.get('ratio_vs_upstream_onnxruntime'), '.2f')} |")
    return "\n".join(lines) + "\n"
