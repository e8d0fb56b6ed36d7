"""lpsnet convert: map a foreign checkpoint into the model of a config.

Detects the source layout (see paddleseg_lpsnet.convert), maps every tensor or
fails, prints what it did, and writes a .pdparams that the config's model loads
strictly (`model.pretrained` or `--model_path`).
"""
import os

from paddleseg_lpsnet.errors import CheckpointError


def add_arguments(parser):
    parser.add_argument("--config", required=True, help="config whose model receives the weights")
    parser.add_argument("--src", required=True, help="source checkpoint (.pdparams, .pth)")
    parser.add_argument("--dst", required=True, help="output .pdparams")
    parser.add_argument("--force", action="store_true", help="overwrite --dst if it exists")
    parser.add_argument("--opts", nargs="+", default=None, help="config overrides key=value")


def run(args):
    from paddleseg_lpsnet.convert import convert_state, read_source
    from paddleseg_lpsnet.utils.config import build_model, load_config
    from paddleseg_lpsnet.utils.io import atomic_paddle_save

    if os.path.abspath(args.src) == os.path.abspath(args.dst):
        raise CheckpointError(f"--dst {args.dst} is the source checkpoint; choose another path.")
    if os.path.exists(args.dst) and not args.force:
        raise CheckpointError(f"--dst {args.dst} exists; pass --force to overwrite it.")
    model = build_model(load_config(args.config, opts=args.opts))
    state = read_source(args.src)
    new_state, report = convert_state(state, model, source=args.src)
    model.set_state_dict(new_state)
    atomic_paddle_save(model.state_dict(), args.dst)
    print(f"Converted {args.src} -> {args.dst} for {type(model).__name__}: {report.summary()}.")
    return 0
