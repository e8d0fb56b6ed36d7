"""deploy.yaml: what an exported model directory holds and how to feed it.

The layout is PaddleSeg's (`Deploy: model, params, transforms, output_op,
output_dtype, input_shape`), with the file names of what was actually written
(model.json under Paddle 3's PIR, model.pdmodel under the legacy IR, model.onnx
for ONNX, which has no params file) and `num_classes` added so that predictions
can be coloured with the right palette.
"""
import os
from dataclasses import dataclass, field

import yaml

from paddleseg_lpsnet.errors import ConfigError

__all__ = ["DEPLOY_FILE", "OUTPUT_OPS", "FORMATS", "PRECISIONS", "DEFAULT_OPSET", "DeployConfig", "build_transforms",
           "model_format",
           "val_transforms_of", "config_num_classes"]

DEPLOY_FILE = "deploy.yaml"
OUTPUT_OPS = ("argmax", "softmax", "none")
FORMATS = ("paddle", "onnx")
PRECISIONS = ("fp32", "int8")
# ONNX opset: 13 has per-channel QuantizeLinear (onnxruntime int8) and every op we emit.
DEFAULT_OPSET = 13
_FORMATS = {".json": "paddle", ".pdmodel": "paddle", ".onnx": "onnx"}


def model_format(model_file):
    """'paddle' or 'onnx' from a model file name; ConfigError for anything else."""
    ext = os.path.splitext(model_file)[1].lower()
    if ext not in _FORMATS:
        raise ConfigError(f"Model file {model_file} is neither a Paddle inference model "
                          "(.json, .pdmodel) nor ONNX (.onnx).")
    return _FORMATS[ext]


def build_transforms(transform_cfgs, img_channels=3, where="transforms"):
    """PaddleSeg's Compose of the transforms named in `transform_cfgs` (list of dicts)."""
    from paddleseg.transforms import Compose

    from paddleseg_lpsnet.utils.config import find_component
    if not isinstance(transform_cfgs, list):
        raise ConfigError(f"{where} must be a list of {{type: ...}} dicts, got {type(transform_cfgs).__name__}.")
    transforms = []
    for i, cfg in enumerate(transform_cfgs):
        if not isinstance(cfg, dict) or "type" not in cfg:
            raise ConfigError(f"{where}[{i}] must be a dict with a `type`, got {cfg!r}.")
        kwargs = {k: v for k, v in cfg.items() if k != "type"}
        cls = find_component(cfg["type"], f"{where}[{i}]")
        try:
            transforms.append(cls(**kwargs))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}[{i}] ({cfg['type']}): {exc}") from exc
    return Compose(transforms, to_rgb=True, img_channels=img_channels)


@dataclass
class DeployConfig:
    """The content of an export directory's deploy.yaml.

    Args:
        model_dir (str): The export directory.
        model (str): Model file name inside it (model.json, model.pdmodel or model.onnx).
        params (str|None): Params file name (model.pdiparams); None for ONNX.
        transforms (list[dict]): PaddleSeg transforms applied before the model.
        output_op (str): argmax (int32 [N, H, W] labels), softmax or none
            (float32 [N, C, H, W] probabilities or logits).
        input_shape (list[int]): [N, C, H, W]; -1 for a dynamic dimension.
        num_classes (int|None): Classes of the model, when known.
        precision (str): fp32, or int8 for a quantized ONNX model (`lpsnet export
            --quantize int8`); written to deploy.yaml only when int8.
    """
    model_dir: str
    model: str
    params: str = None
    transforms: list = field(default_factory=lambda: [{"type": "Normalize"}])
    output_op: str = "argmax"
    input_shape: list = field(default_factory=lambda: [-1, 3, -1, -1])
    num_classes: int = None
    precision: str = "fp32"

    @property
    def output_dtype(self):
        return "int32" if self.output_op == "argmax" else "float32"

    @property
    def model_file(self):
        return os.path.join(self.model_dir, self.model)

    @property
    def params_file(self):
        return os.path.join(self.model_dir, self.params) if self.params else None

    @property
    def format(self):
        return model_format(self.model)

    @property
    def in_channels(self):
        return int(self.input_shape[1])

    @property
    def path(self):
        return os.path.join(self.model_dir, DEPLOY_FILE)

    def build_transforms(self):
        return build_transforms(self.transforms, self.in_channels, where=f"{self.path}: Deploy.transforms")

    def to_dict(self):
        deploy = {"model": self.model}
        if self.params:
            deploy["params"] = self.params
        deploy.update(transforms=self.transforms, output_op=self.output_op,
                      output_dtype=self.output_dtype, input_shape=list(self.input_shape))
        if self.num_classes is not None:
            deploy["num_classes"] = int(self.num_classes)
        if self.precision != "fp32":
            deploy["precision"] = self.precision
        return {"Deploy": deploy}

    def to_yaml(self):
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def load(cls, model_dir):
        """Read and check `model_dir`/deploy.yaml: keys, values, and that the files it names exist."""
        path = os.path.join(model_dir, DEPLOY_FILE)
        if not os.path.isdir(model_dir):
            raise ConfigError(f"--model_dir {model_dir} is not a directory; expected the --save_dir of `lpsnet export`.")
        if not os.path.isfile(path):
            raise ConfigError(f"{path} does not exist; is {model_dir} the --save_dir of `lpsnet export`?")
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        deploy = doc.get("Deploy") if isinstance(doc, dict) else None
        if not isinstance(deploy, dict) or "model" not in deploy:
            raise ConfigError(f"{path} has no `Deploy: model:` entry (PaddleSeg's deploy.yaml layout).")
        output_op = deploy.get("output_op", "argmax") or "none"
        if output_op not in OUTPUT_OPS:
            raise ConfigError(f"{path}: Deploy.output_op is {output_op!r}; expected one of {', '.join(OUTPUT_OPS)}.")
        precision = deploy.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise ConfigError(f"{path}: Deploy.precision is {precision!r}; expected one of {', '.join(PRECISIONS)}.")
        shape = deploy.get("input_shape") or [-1, 3, -1, -1]
        if not (isinstance(shape, list) and len(shape) == 4):
            raise ConfigError(f"{path}: Deploy.input_shape is {shape!r}; expected [N, C, H, W].")
        config = cls(model_dir=model_dir, model=str(deploy["model"]), params=deploy.get("params"),
                     transforms=deploy.get("transforms") or [{"type": "Normalize"}],
                     output_op=output_op, input_shape=[-1 if d is None else int(d) for d in shape],
                     num_classes=deploy.get("num_classes"), precision=precision)
        model_format(config.model)
        for key, file in (("model", config.model_file), ("params", config.params_file)):
            if file is not None and not os.path.isfile(file):
                raise ConfigError(f"{path}: Deploy.{key} names {os.path.basename(file)}, which is not in {model_dir}.")
        if config.format == "paddle" and config.params_file is None:
            raise ConfigError(f"{path}: a Paddle model needs Deploy.params (model.pdiparams).")
        return config


def val_transforms_of(cfg):
    """The val transforms (list of dicts) of a PaddleSeg Config; [Normalize] when it has none.

    These are what deploy.yaml records and what `predict` applies: PaddleSeg's
    export takes the same list.
    """
    val = cfg.dic.get("val_dataset") or {}
    transforms = val.get("transforms") if isinstance(val, dict) else None
    return [dict(t) for t in transforms] if transforms else [{"type": "Normalize"}]


def config_num_classes(cfg, model=None):
    """num_classes of a config's model (the built model's attribute first), or None."""
    value = getattr(model, "num_classes", None)
    if value is None:
        value = (cfg.dic.get("model") or {}).get("num_classes")
    return int(value) if value is not None else None
