"""lpsnet export: a config's model -> an inference model that Paddle Inference or onnxruntime loads.

PaddleSeg's export.py flags. Writes save_dir/model.json (model.pdmodel under the
legacy IR) + model.pdiparams, or save_dir/model.onnx with --format onnx, and a
deploy.yaml naming them with the config's val transforms. The model is exported
in deploy form (BN folded where the model supports it), eval mode, one output.
With --quantize int8 the ONNX model is quantized after export, with activation
ranges calibrated on --calib_dir's images (deploy/quantize.py).
"""
from paddleseg_lpsnet.deploy.config import DEFAULT_OPSET, FORMATS, OUTPUT_OPS
from paddleseg_lpsnet.deploy.quantize import CALIB_METHODS


def add_arguments(parser):
    parser.add_argument("--config", required=True, help="config file of the model")
    parser.add_argument("--model_path", default=None,
                        help="weights (.pdparams or a folder holding model.pdparams), loaded strictly; "
                             "default: the config's `pretrained` entries")
    parser.add_argument("--save_dir", default="output/inference_model", help="output directory")
    parser.add_argument("--output_op", choices=OUTPUT_OPS, default="argmax",
                        help="op appended to the logits: argmax (int32 labels), softmax or none")
    parser.add_argument("--input_shape", nargs=4, type=int, default=None, metavar=("N", "C", "H", "W"),
                        help="fixed input shape (-1 = dynamic); default: dynamic batch, height and width")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="paddle (Paddle Inference) or onnx (through paddle2onnx); default: paddle, "
                             "onnx with --quantize")
    parser.add_argument("--opset_version", type=int, default=DEFAULT_OPSET, help="ONNX opset (--format onnx)")
    parser.add_argument("--dense_argmax", action="store_true",
                        help="upsample all logits before the argmax (default: the sparse form, same labels, faster)")
    parser.add_argument("--quantize", choices=["int8"], default=None,
                        help="int8: post-training static quantization (onnxruntime), ONNX output")
    parser.add_argument("--calib_dir", default=None,
                        help="calibration images for --quantize (a folder, an image or a file list)")
    parser.add_argument("--calib_num", type=int, default=32, help="calibration images used at most (default: 32)")
    parser.add_argument("--calib_method", choices=CALIB_METHODS, default="minmax",
                        help="activation range calibration (default: minmax)")
    parser.add_argument("--opts", nargs="+", default=None, help="config overrides key=value")


def _check_quantize_args(args):
    from paddleseg_lpsnet.errors import ConfigError
    if args.quantize is None:
        if args.calib_dir is not None:
            raise ConfigError("--calib_dir is only used with --quantize int8.")
        return args.format or "paddle"
    if args.format == "paddle":
        raise ConfigError("--quantize int8 writes an ONNX model; drop --format paddle (or use --format onnx).")
    if args.calib_dir is None:
        raise ConfigError("--quantize int8 needs --calib_dir: images to calibrate the activation ranges on.")
    if args.output_op != "argmax":
        raise ConfigError(f"--quantize int8 supports --output_op argmax, not {args.output_op}.")
    return "onnx"


def run(args):
    import tempfile

    from paddleseg_lpsnet.deploy.config import config_num_classes, val_transforms_of
    from paddleseg_lpsnet.deploy.export import export_model
    from paddleseg_lpsnet.deploy.quantize import quantize_export
    from paddleseg_lpsnet.utils.config import build_model_with_weights, load_config

    fmt = _check_quantize_args(args)
    cfg = load_config(args.config, opts=args.opts)
    model, source = build_model_with_weights(cfg, args.model_path)
    options = dict(transforms=val_transforms_of(cfg), output_op=args.output_op, input_shape=args.input_shape,
                   format=fmt, opset_version=args.opset_version, num_classes=config_num_classes(cfg, model),
                   sparse_argmax=not args.dense_argmax)
    if args.quantize:
        with tempfile.TemporaryDirectory(prefix="lpsnet-fp32-") as fp32_dir:
            export_model(model, fp32_dir, **options)
            config = quantize_export(fp32_dir, args.save_dir, args.calib_dir, args.calib_num, args.calib_method)
        what = f"int8 (calibrated on {args.calib_dir})"
    else:
        config = export_model(model, args.save_dir, **options)
        what = "fp32"
    files = ", ".join(f for f in (config.model, config.params) if f)
    print(f"Exported {type(model).__name__} (weights: {source}) to {args.save_dir}: {files} + "
          f"deploy.yaml ({what}, output_op {config.output_op}, input_shape {config.input_shape}).")
    return 0
