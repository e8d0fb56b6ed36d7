"""lpsnet val: PaddleSeg's val.py flags; prints mIoU, Acc, Kappa and per-class IoU."""


def add_arguments(parser):
    parser.add_argument("--config", required=True, help="config file (.yml)")
    parser.add_argument("--model_path", required=True,
                        help="weights (.pdparams, or a directory holding model.pdparams); loaded strictly")
    parser.add_argument("--device", default="gpu", choices=["cpu", "gpu", "xpu", "npu", "mlu"],
                        help="falls back to cpu if unavailable (default: gpu)")
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--aug_eval", action="store_true", default=None,
                        help="average logits over --scales and the chosen flips")
    parser.add_argument("--scales", nargs="+", type=float, default=None, help="scales of aug_eval")
    parser.add_argument("--flip_horizontal", action="store_true", default=None, help="aug_eval: horizontal flip")
    parser.add_argument("--flip_vertical", action="store_true", default=None, help="aug_eval: vertical flip")
    parser.add_argument("--is_slide", action="store_true", default=None, help="sliding-window inference")
    parser.add_argument("--crop_size", nargs=2, type=int, default=None, help="slide window (w h)")
    parser.add_argument("--stride", nargs=2, type=int, default=None, help="slide stride (w h)")
    parser.add_argument("--rescale", type=float, default=None,
                        help="predict at this scale of the image and upsample the logits back "
                             "(bilinear, align_corners=True): PMSDSEN's protocol is 0.5")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16"], help="fp16: AMP (GPU)")
    parser.add_argument("--amp_level", default="O1", choices=["O1", "O2"], help="AMP level")
    parser.add_argument("--skip_bad_samples", action="store_true",
                        help="leave samples that fail to load out of the metrics, with a warning, "
                             "instead of stopping with an error naming the file")
    parser.add_argument("--opts", nargs="+", default=None, help="config overrides key=value")


def run(args):
    from paddleseg_lpsnet.core.val import validate
    from paddleseg_lpsnet.errors import ConfigError
    if args.is_slide and (args.crop_size is None or args.stride is None):
        raise ConfigError("--is_slide needs --crop_size W H and --stride W H.")
    scales = args.scales[0] if args.scales and len(args.scales) == 1 else args.scales
    validate(args.config, args.model_path, aug_eval=args.aug_eval, scales=scales,
             flip_horizontal=args.flip_horizontal, flip_vertical=args.flip_vertical,
             is_slide=args.is_slide, crop_size=args.crop_size, stride=args.stride,
             num_workers=args.num_workers, device=args.device, precision=args.precision,
             amp_level=args.amp_level, opts=args.opts, skip_bad_samples=args.skip_bad_samples,
             rescale=args.rescale)
    return 0
