"""lpsnet predict: dygraph prediction of a config's model on images, PaddleSeg's predict.py flags.

Writes save_dir/pseudo_color_prediction/<name>.png (palette PNG: the pixel values
are the class ids; Cityscapes colours for 19 classes) and
save_dir/added_prediction/<name> (the image blended with the colours). Inference
is PaddleSeg's own (`paddleseg.core.infer`): single scale, or with --aug_pred the
average of the logits over --scales and flips, optionally by sliding window.
"""


def add_arguments(parser):
    parser.add_argument("--config", required=True, help="config file of the model")
    parser.add_argument("--model_path", required=True,
                        help="weights (.pdparams or a folder holding model.pdparams), loaded strictly")
    parser.add_argument("--image_path", required=True, help="an image, a directory of images or a file list")
    parser.add_argument("--save_dir", default="output/result", help="output directory")
    parser.add_argument("--aug_pred", action="store_true", help="multi-scale and flip augmented prediction")
    parser.add_argument("--scales", nargs="+", type=float, default=[1.0], help="scales for --aug_pred")
    parser.add_argument("--flip_horizontal", action="store_true", help="add horizontal flips (--aug_pred)")
    parser.add_argument("--flip_vertical", action="store_true", help="add vertical flips (--aug_pred)")
    parser.add_argument("--is_slide", action="store_true", help="predict by sliding window")
    parser.add_argument("--crop_size", nargs=2, type=int, default=None, metavar=("W", "H"),
                        help="sliding window size (--is_slide)")
    parser.add_argument("--stride", nargs=2, type=int, default=None, metavar=("W", "H"),
                        help="sliding window stride (--is_slide)")
    parser.add_argument("--custom_color", nargs="+", type=int, default=None,
                        help="R G B triples replacing the colours of classes 0, 1, ...")
    parser.add_argument("--opts", nargs="+", default=None, help="config overrides key=value")


def check_slide_args(args):
    """ConfigError unless --crop_size and --stride are positive when --is_slide is on."""
    from paddleseg_lpsnet.errors import ConfigError
    if not args.is_slide:
        return
    for flag in ("crop_size", "stride"):
        value = getattr(args, flag)
        if value is None or min(value) < 1:
            raise ConfigError(f"--is_slide needs --{flag} W H (positive integers), got {value}.")
    if any(s > c for s, c in zip(args.stride, args.crop_size)):
        raise ConfigError(f"--stride {args.stride} must not exceed --crop_size {args.crop_size}: "
                          "pixels between windows would never be predicted.")


def predict_image(model, image, transforms, args):
    """[H, W] int32 class ids of one image array with PaddleSeg's dygraph inference."""
    import paddle
    from paddleseg.core import infer

    from paddleseg_lpsnet.deploy.segmenter import preprocess
    chw, trans_info = preprocess(image, transforms)
    x = paddle.to_tensor(chw[None])
    slide = dict(is_slide=args.is_slide, stride=args.stride, crop_size=args.crop_size)
    with paddle.no_grad():
        if args.aug_pred:
            pred, _ = infer.aug_inference(model, x, trans_info=trans_info, scales=list(args.scales),
                                          flip_horizontal=args.flip_horizontal,
                                          flip_vertical=args.flip_vertical, **slide)
        else:
            pred, _ = infer.inference(model, x, trans_info=trans_info, **slide)
    return pred.numpy()[0, 0].astype("int32")  # [1, 1, H, W] -> [H, W]


def run(args):
    from paddleseg_lpsnet.deploy.config import build_transforms, config_num_classes, val_transforms_of
    from paddleseg_lpsnet.deploy.export import model_in_channels
    from paddleseg_lpsnet.deploy.segmenter import model_failure
    from paddleseg_lpsnet.utils.config import build_model_with_weights, load_config
    from paddleseg_lpsnet.utils.image import list_images, output_name, read_image
    from paddleseg_lpsnet.utils.visualize import get_palette, save_prediction

    check_slide_args(args)
    images, root = list_images(args.image_path)
    cfg = load_config(args.config, opts=args.opts)
    model, _ = build_model_with_weights(cfg, args.model_path)
    channels = model_in_channels(model)
    transforms = build_transforms(val_transforms_of(cfg), channels, where=f"{args.config}: val_dataset.transforms")
    palette = get_palette(config_num_classes(cfg, model), args.custom_color)
    for path in images:
        image = read_image(path, channels)
        try:
            label = predict_image(model, image, transforms, args)
        except Exception as exc:  # paddle raises AssertionError, ValueError, RuntimeError...
            raise model_failure(exc, [path], [image.shape[:2]]) from exc
        save_prediction(args.save_dir, output_name(path, root), label, palette, image)
    print(f"Predicted {len(images)} image(s) with {type(model).__name__} ({args.model_path}); "
          f"results in {args.save_dir}/pseudo_color_prediction and {args.save_dir}/added_prediction.")
    return 0
