"""lpsnet export: a config's model -> an inference model that Paddle Inference or onnxruntime loads.

PaddleSeg's export.py flags. Writes save_dir/model.json (model.pdmodel under the
legacy IR) + model.pdiparams, or save_dir/model.onnx with --format onnx, and a
deploy.yaml naming them with the config's val transforms. The model is exported
in deploy form (BN folded where the model supports it), eval mode, one output.
"""
from paddleseg_lpsnet.deploy.config import DEFAULT_OPSET, FORMATS, OUTPUT_OPS


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
    parser.add_argument("--format", choices=FORMATS, default="paddle",
                        help="paddle (Paddle Inference) or onnx (through paddle2onnx)")
    parser.add_argument("--opset_version", type=int, default=DEFAULT_OPSET, help="ONNX opset (--format onnx)")
    parser.add_argument("--opts", nargs="+", default=None, help="config overrides key=value")


def run(args):
    from paddleseg_lpsnet.deploy.config import config_num_classes, val_transforms_of
    from paddleseg_lpsnet.deploy.export import export_model
    from paddleseg_lpsnet.utils.config import build_model_with_weights, load_config

    cfg = load_config(args.config, opts=args.opts)
    model, source = build_model_with_weights(cfg, args.model_path)
    config = export_model(model, args.save_dir, transforms=val_transforms_of(cfg), output_op=args.output_op,
                          input_shape=args.input_shape, format=args.format, opset_version=args.opset_version,
                          num_classes=config_num_classes(cfg, model))
    files = ", ".join(f for f in (config.model, config.params) if f)
    print(f"Exported {type(model).__name__} (weights: {source}) to {args.save_dir}: {files} + deploy.yaml "
          f"(output_op {config.output_op}, input_shape {config.input_shape}).")
    return 0
