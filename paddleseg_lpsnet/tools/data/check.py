"""lpsnet data check: report every problem in a config's train/val data at once.

Exit status 0 with a one-line summary when the data is clean; 1 with one line per
problem (each naming the file or config key) and a summary otherwise.
"""
import os
import sys


def add_arguments(parser):
    parser.add_argument("--config", required=True, help="PaddleSeg config whose datasets to scan")
    parser.add_argument("--split", choices=["train", "val", "all"], default="all",
                        help="which dataset section to scan (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="paths and file lists only (what `lpsnet train` checks); no decoding")
    parser.add_argument("--num_workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="threads decoding files (default: up to 4)")
    parser.add_argument("--opts", nargs="+", default=None, help="config overrides key=value")


def run(args):
    from paddleseg_lpsnet.datasets.check import check_config_data
    from paddleseg_lpsnet.utils.config import load_config
    cfg = load_config(args.config, opts=args.opts)
    splits = ("train", "val") if args.split == "all" else (args.split,)
    report = check_config_data(cfg, splits=splits, deep=not args.quick, num_workers=args.num_workers)
    for problem in report.problems:
        print(problem)
    print(f"{args.config}: {report.summary()}", file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1
