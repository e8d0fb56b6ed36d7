"""lpsnet demo: generate street scenes, train LPS-Net-S, evaluate, export, deploy (CPU, minutes)."""


def add_arguments(parser):
    from paddleseg_lpsnet.demo import DEMO_CONFIG
    parser.add_argument("--out", default="demo_output", help="output directory (data, checkpoints, "
                        "VisualDL logs, inference model, prediction, summary.json)")
    parser.add_argument("--config", default=DEMO_CONFIG, help="training recipe (default: %(default)s)")
    parser.add_argument("--num_train", type=int, default=300, help="generated training images")
    parser.add_argument("--num_val", type=int, default=60, help="generated validation images")
    parser.add_argument("--size", type=int, nargs=2, default=[256, 512], metavar=("H", "W"),
                        help="size of the generated images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of the training")
    parser.add_argument("--iters", type=int, default=None, help="training iterations (default: the config's)")
    parser.add_argument("--device", default="gpu", help="training device (falls back to cpu)")
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes")


def run(args):
    from paddleseg_lpsnet.demo import run_demo
    run_demo(args.out, args.config, args.num_train, args.num_val, tuple(args.size), args.seed, args.iters,
             args.device, args.num_workers)
    return 0
