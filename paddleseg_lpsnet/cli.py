"""`lpsnet`: one console command, subcommands named after PaddleSeg's tools.

Each subcommand lives in paddleseg_lpsnet/tools/<name>.py and provides
`add_arguments(parser)` and `run(args) -> int`. Only the chosen subcommand's module
is imported. Errors the user can act on (LPSNetError) print one line and exit 2.
"""
import argparse
import difflib
import importlib
import sys
import warnings

# name -> (module, one-line help). Keep in the order `lpsnet --help` shows them.
COMMANDS = {
    "demo": ("paddleseg_lpsnet.tools.demo",
             "the whole flow on generated street scenes: data, train LPS-Net-S, val, export, infer"),
    "convert": ("paddleseg_lpsnet.tools.convert",
                "convert a PaddleSeg / authors' / ImageNet checkpoint into a config's model"),
    "train": ("paddleseg_lpsnet.tools.train", "train a config's model (PaddleSeg's train.py flags)"),
    "val": ("paddleseg_lpsnet.tools.val", "evaluate a checkpoint: mIoU, Acc, Kappa, per-class IoU"),
    "predict": ("paddleseg_lpsnet.tools.predict",
                "dygraph prediction of a config's model: colour-mapped predictions and overlays"),
    "export": ("paddleseg_lpsnet.tools.export",
               "export a config's model for deployment (Paddle inference model or ONNX + deploy.yaml)"),
    "infer": ("paddleseg_lpsnet.tools.infer",
              "run an exported model on images with Paddle Inference or onnxruntime"),
    "scale": ("paddleseg_lpsnet.tools.scale",
              "grow a tiny LPS-Net by the paper's progressive scaling on this device and data"),
    "data": ("paddleseg_lpsnet.tools.data",
             "datasets: synth, synth-imagenet, prepare-cityscapes, check, class-weights"),
    "pretrain": ("paddleseg_lpsnet.tools.pretrain",
                 "ImageNet pretraining of a backbone from a PaddleClas config"),
    "bench": ("paddleseg_lpsnet.tools.bench",
              "deployment speed of ours and upstream's models against the machine's fp32 peak"),
}


def _usage():
    lines = ["usage: lpsnet <command> [options]", "", "commands:"]
    width = max(len(n) for n in COMMANDS)
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `lpsnet <command> -h` for the options of a command."]
    return "\n".join(lines)


def build_parser(name):
    """The argparse parser of subcommand `name` (imports its module)."""
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"lpsnet {name}", description=help_)
    module.add_arguments(parser)
    return module, parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from paddleseg_lpsnet import __version__
        print(f"paddleseg-lpsnet {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        print(f"lpsnet: unknown command {name!r}.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    # Paddle warns on import that ccache (a compiler cache for custom ops) is absent.
    warnings.filterwarnings("ignore", message="No ccache found")
    module, parser = build_parser(name)
    args = parser.parse_args(argv[1:])
    from paddleseg_lpsnet.errors import LPSNetError
    try:
        return int(module.run(args) or 0)
    except LPSNetError as exc:
        print(f"lpsnet {name}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
