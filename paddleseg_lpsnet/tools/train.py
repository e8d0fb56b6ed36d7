"""lpsnet train: PaddleSeg's train.py flags; the loop is paddleseg_lpsnet.core.train."""


def add_arguments(parser):
    parser.add_argument("--config", required=True, help="config file (.yml)")
    parser.add_argument("--device", default="gpu", choices=["cpu", "gpu", "xpu", "npu", "mlu"],
                        help="device to train on; falls back to cpu if unavailable (default: gpu)")
    parser.add_argument("--save_dir", default="./output", help="checkpoints and VisualDL records")
    parser.add_argument("--num_workers", type=int, default=0,
                        help="DataLoader worker processes; 0 reads in the main thread")
    parser.add_argument("--do_eval", action="store_true", help="evaluate at every checkpoint")
    parser.add_argument("--use_vdl", action="store_true", help="write VisualDL records")
    parser.add_argument("--use_ema", action="store_true", help="keep and evaluate an EMA of the weights")
    parser.add_argument("--resume_model", default=None,
                        help="checkpoint directory to resume from (save_dir/iter_N), or `auto` for "
                             "the newest complete one in save_dir")
    parser.add_argument("--iters", type=int, default=None, help="iterations (overrides the config)")
    parser.add_argument("--batch_size", type=int, default=None, help="batch size per card (overrides the config)")
    parser.add_argument("--learning_rate", type=float, default=None, help="base LR (overrides the config)")
    parser.add_argument("--save_interval", type=int, default=1000, help="checkpoint every N iterations")
    parser.add_argument("--log_iters", type=int, default=10, help="log every N iterations")
    parser.add_argument("--keep_checkpoint_max", type=int, default=5,
                        help="iter_N checkpoints kept (best_model aside); <= 0 keeps all")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed weights, shuffling and augmentations (makes resume exact)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16"], help="fp16: AMP (GPU)")
    parser.add_argument("--amp_level", default="O1", choices=["O1", "O2"], help="AMP level")
    parser.add_argument("--nan_policy", default="stop", choices=["stop", "skip"],
                        help="a NaN or Inf loss: stop (error naming the iteration; checkpoints kept) or "
                             "skip the batch with a warning (default: stop)")
    parser.add_argument("--skip_bad_samples", action="store_true",
                        help="replace a sample that fails to load by the next good one (leave it out "
                             "of evaluation), with a warning, instead of stopping with an error")
    parser.add_argument("--opts", nargs="+", default=None, help="config overrides key=value")


def run(args):
    from paddleseg_lpsnet.core.train import train
    result = train(args.config, save_dir=args.save_dir, iters=args.iters, batch_size=args.batch_size,
                   learning_rate=args.learning_rate, do_eval=args.do_eval, use_vdl=args.use_vdl,
                   save_interval=args.save_interval, log_iters=args.log_iters,
                   keep_checkpoint_max=args.keep_checkpoint_max, seed=args.seed,
                   resume_model=args.resume_model, num_workers=args.num_workers, device=args.device,
                   precision=args.precision, amp_level=args.amp_level, use_ema=args.use_ema,
                   opts=args.opts, nan_policy=args.nan_policy, skip_bad_samples=args.skip_bad_samples)
    import paddle
    if paddle.distributed.get_rank() == 0:
        best = f"; best mIoU {result.best_miou:.4f} at iter {result.best_iter}" if result.best_iter >= 0 else ""
        print(f"Trained to iteration {result.iteration} in {result.save_dir}{best}.")
    return 0
