"""lpsnet bench: deployment speed of ours and upstream's models, against the machine's fp32 peak.

Prints a Markdown table (machine, per-size tables, ours vs PaddleSeg's LPSNet) and
writes it with the full JSON (every run's time) to --save_dir. A quick run:
`lpsnet bench --models lpsnet_m upstream_lpsnet_m --sizes 512x1024 --repeats 3`.
"""
from paddleseg_lpsnet.deploy.predictor import BACKENDS, DEVICES
from paddleseg_lpsnet.deploy.suite import DEFAULT_SIZES, SUITE_MODELS


def add_arguments(parser):
    keys = [m.key for m in SUITE_MODELS]
    parser.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                        help=f"models to run (default: every one registered): {', '.join(keys)}")
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), metavar="HxW",
                        help="input sizes, batch 1 (default: %(default)s)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS),
                        help="inference engines (default: both)")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="cpu or gpu")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per measurement (default: 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default: 3)")
    parser.add_argument("--cpu_threads", type=int, default=None, help="threads; default: all usable cores")
    parser.add_argument("--gemm_size", type=int, default=4096, help="n of the n^3 GEMM that measures the peak")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: latency (default); cpu: CPU time of the calling thread, with --cpu_threads 1, "
                             "to compare models on a machine other jobs are using")
    parser.add_argument("--dense_argmax", action="store_true",
                        help="export our models with the dense argmax (upsample all logits) instead of the sparse one")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the models' random weights and of the input (default 0); the sparse "
                             "argmax's work, and so our models' times, depends on the labels' class boundaries")
    parser.add_argument("--save_dir", default="output/bench", help="where bench.json and bench.md go")


def run(args):
    import json
    import os

    from paddleseg_lpsnet.deploy.suite import run_suite, to_markdown
    from paddleseg_lpsnet.errors import ConfigError
    from paddleseg_lpsnet.utils.io import atomic_write_text

    if args.cpu_threads is not None and args.cpu_threads < 1:
        raise ConfigError(f"--cpu_threads must be >= 1, got {args.cpu_threads}.")
    if os.path.exists(args.save_dir) and not os.path.isdir(args.save_dir):
        raise ConfigError(f"--save_dir {args.save_dir} is a file; expected a directory.")
    result = run_suite(models=args.models, sizes=args.sizes, backends=args.backends, repeats=args.repeats,
                       warmup=args.warmup, cpu_threads=args.cpu_threads, device=args.device,
                       gemm_n=args.gemm_size, export_options={"sparse_argmax": not args.dense_argmax},
                       clock=args.clock, seed=args.seed)
    table = to_markdown(result)
    os.makedirs(args.save_dir, exist_ok=True)
    atomic_write_text(json.dumps(result, indent=1), os.path.join(args.save_dir, "bench.json"))
    atomic_write_text(table, os.path.join(args.save_dir, "bench.md"))
    print()
    print(table)
    print(f"Wrote {os.path.join(args.save_dir, 'bench.json')} and bench.md.")
    return 0
