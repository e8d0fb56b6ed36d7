"""What the benchmark scripts share: their timing options and the checks on them."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def add_timing_arguments(parser, rounds=3, repeats=4, warmup=2):
    """--rounds --repeats --warmup --cpu_threads --clock, as every script here takes them."""
    parser.add_argument("--rounds", type=int, default=rounds, help=f"round-robin rounds (default {rounds})")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help=f"timed runs per variant per round (default {repeats})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed runs per variant first (default {warmup})")
    parser.add_argument("--cpu_threads", type=int, default=None, help="threads; default: all usable cores")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall clock, or CPU time of the calling thread (with --cpu_threads 1): "
                             "for comparisons on a machine other jobs use")


def timing_from_args(parser, args):
    """(threads, clock function) of the parsed timing options; a parser error if they do not fit."""
    from paddleseg_lpsnet.deploy.predictor import default_cpu_threads
    from paddleseg_lpsnet.deploy.suite import CLOCKS
    threads = args.cpu_threads or default_cpu_threads()
    if args.clock == "cpu" and threads != 1:
        parser.error("--clock cpu needs --cpu_threads 1")
    if args.rounds < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--rounds and --repeats must be >= 1, --warmup >= 0")
    return threads, CLOCKS[args.clock]


def add_int8_model_arguments(parser):
    """--config --model_path --calib_dir --calib_num: the trained model and calibration images the
    int8 scripts (int8_quality.py, int8_variants.py) take."""
    parser.add_argument("--config", required=True)
    parser.add_argument("--model_path", required=True, help="trained weights (.pdparams)")
    parser.add_argument("--calib_dir", required=True, help="calibration images (e.g. the training images)")
    parser.add_argument("--calib_num", type=int, default=32)


def check_int8_model_arguments(parser, args):
    """A parser error naming the option whose file or folder is missing, before any work."""
    for option in ("config", "model_path", "calib_dir"):
        if not os.path.exists(getattr(args, option)):
            parser.error(f"--{option} {getattr(args, option)} does not exist")


def main_with_errors(main):
    """Run a script's main(); the project's errors (a wrong config key, a missing or bad
    file...) end it with their one-line message and exit code 2, as the `lpsnet` command does."""
    from paddleseg_lpsnet.errors import LPSNetError
    try:
        return main()
    except LPSNetError as exc:
        print(f"{os.path.basename(sys.argv[0])}: error: {exc}", file=sys.stderr)
        return 2
