"""lpsnet scale: grow a tiny LPS-Net by the paper's progressive scaling, on this device and data."""
from paddleseg_lpsnet.errors import ConfigError


def add_arguments(parser):
    parser.add_argument("--config", required=True,
                        help="base config: its data and training recipe are used for every candidate")
    parser.add_argument("--out", required=True, help="search directory (resumes if it holds a search)")
    parser.add_argument("--steps", type=int, default=3, help="expansion steps (the authors' demo runs 14)")
    parser.add_argument("--input_size", type=int, nargs=2, default=[1024, 2048], metavar=("H", "W"),
                        help="input size of the latency measurement (batch 1)")
    parser.add_argument("--latency_backend", default="onnxruntime", choices=["onnxruntime", "paddle"],
                        help="deployment backend the latency is measured on")
    parser.add_argument("--latency_repeats", type=int, default=10, help="timed runs per measurement (median)")
    parser.add_argument("--latency_of", default="network", choices=["network", "deployed"],
                        help="what is timed: the network up to its low-resolution logits (default; the final "
                             "upsampling and argmax cost every candidate the same), or the deployed model")
    parser.add_argument("--latency_clock", default="wall", choices=["wall", "cpu"],
                        help="wall clock, or CPU time of the calling thread (needs --cpu_threads 1): steadier "
                             "on a machine other jobs use")
    parser.add_argument("--cpu_threads", type=int, default=None, help="backend threads (default: all cores)")
    parser.add_argument("--proxy_iters", type=int, default=200, help="training iterations per candidate")
    parser.add_argument("--proxy_batch_size", type=int, default=8, help="batch size of the proxy training")
    parser.add_argument("--start", default=None,
                        help="starting network 'depths;channels;ratios' (default: the paper's tiny net "
                             "'1,1,1,1,1;4,8,16,32,32;1/2,0,0')")
    parser.add_argument("--max_ratio", type=float, default=1.0, help="largest path ratio a move may reach")
    parser.add_argument("--seed", type=int, default=0, help="seed of every proxy training")
    parser.add_argument("--device", default="gpu", help="device of the proxy training (falls back to cpu)")
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader workers of the proxy training")


def run(args):
    from paddleseg_lpsnet.scaling import parse_arch
    from paddleseg_lpsnet.scaling.runner import ScaleSettings, run_scale

    if args.steps < 1 or args.proxy_iters < 1 or args.proxy_batch_size < 1 or args.latency_repeats < 1:
        raise ConfigError("--steps, --proxy_iters, --proxy_batch_size and --latency_repeats must be >= 1.")
    if args.latency_clock == "cpu" and args.cpu_threads != 1:
        raise ConfigError("--latency_clock cpu times the calling thread: it needs --cpu_threads 1.")
    try:
        start = parse_arch(args.start).to_dict() if args.start else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    settings = ScaleSettings(config=args.config, input_size=list(args.input_size),
                             latency_backend=args.latency_backend, proxy_iters=args.proxy_iters,
                             proxy_batch_size=args.proxy_batch_size, seed=args.seed, start=start,
                             max_ratio=args.max_ratio, latency_repeats=args.latency_repeats,
                             cpu_threads=args.cpu_threads, latency_of=args.latency_of,
                             latency_clock=args.latency_clock)
    path, _ = run_scale(settings, args.out, args.steps, device=args.device, num_workers=args.num_workers)
    final = path[-1]
    print(f"[scale] done: step {len(path) - 1} network {final.arch} ({final.latency_ms:.2f} ms, "
          f"proxy mIoU {final.miou:.4f}). Configs in {args.out}/configs, table in {args.out}/summary.md, "
          f"plot in {args.out}/frontier.png.")
    return 0
