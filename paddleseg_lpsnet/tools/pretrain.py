"""lpsnet pretrain: ImageNet pretraining of an LPS-Net backbone from a PaddleClas config.

    lpsnet pretrain -c pretrain_imagenet/LPSNet_M.yaml [-o Global.epochs=10 ...]

Flags are PaddleClas's tools/train.py flags (-c, -o Key.path=value). With a PaddleClas
source tree importable, PaddleClas's own Engine trains (our architectures registered);
otherwise paddleseg-lpsnet's trainer, which reads the same sections with the same
meaning. Both run under `python -m paddle.distributed.launch`. The best checkpoint,
<Global.output_dir>/best_model.pdparams, is what a segmentation config's
`backbone.pretrained` takes.
"""
import os

# Not --trainer: paddle.distributed.launch would take it for its own --trainers.
ENGINES = ("auto", "paddleclas", "lpsnet")


def add_arguments(parser):
    parser.add_argument("-c", "--config", required=True, help="PaddleClas config (.yaml)")
    parser.add_argument("-o", "--override", action="append", nargs="+", default=[],
                        metavar="KEY=VALUE", help="override a config value, e.g. -o Global.epochs=10 "
                        "(repeatable; list items by index: DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=32)")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="auto: PaddleClas's Engine if a PaddleClas source tree is importable, "
                        "else paddleseg-lpsnet's trainer (default); paddleclas / lpsnet: force one")


def _use_ppcls(choice):
    from paddleseg_lpsnet.errors import LPSNetError
    from paddleseg_lpsnet.pretrain.engine import ppcls_source_available

    if choice == "lpsnet":
        return False
    available = ppcls_source_available()
    if choice == "paddleclas" and not available:
        raise LPSNetError("--engine paddleclas needs a PaddleClas source tree on PYTHONPATH "
                          "(the paddleclas wheel has no training Engine); git clone PaddleClas and "
                          "export PYTHONPATH=/path/to/PaddleClas.")
    return available


def run(args):
    overrides = [opt for group in args.override for opt in group]
    if _use_ppcls(args.engine):
        from paddleseg_lpsnet.pretrain.engine import run_ppcls_engine
        print("lpsnet pretrain: training with PaddleClas's Engine (source tree found).")
        run_ppcls_engine(args.config, overrides)
        return 0
    from paddleseg_lpsnet.pretrain.config import load_ppcls_config
    from paddleseg_lpsnet.pretrain.trainer import PretrainTrainer

    config = load_ppcls_config(args.config, overrides)
    if args.engine == "auto":
        print("lpsnet pretrain: no PaddleClas source tree importable; training with "
              "paddleseg-lpsnet's trainer (same config sections and meaning).")
    trainer = PretrainTrainer(config)
    best = trainer.train()
    if trainer.rank == 0:
        out = config["Global"]["output_dir"]
        print(f"lpsnet pretrain: best top-1 {best['metric']:.4f} at epoch {best['epoch']}; "
              f"checkpoints in {out} ({os.path.join(out, 'best_model.pdparams')} for a "
              "segmentation backbone's `pretrained`).")
    return 0
