"""Building what training and evaluation need from a PaddleSeg config, with clear errors.

Before anything is built: every component `type` in the config must be registered
(close names are suggested), every key must be one something reads (core/config_check.py),
dataset roots and file lists must exist. After a dataset is built: it must have samples,
and every file it lists must exist. The model's `pretrained` checkpoints load strictly
(build_model_checked). Errors are ConfigError / DataError / CheckpointError naming the
config file and key.
"""
import copy
import difflib
import glob
import os
from urllib.parse import urlparse

import paddle

from paddleseg_lpsnet.core.config_check import check_config_dict, read_config_dict
from paddleseg_lpsnet.core.data import CheckedDataset
from paddleseg_lpsnet.errors import CheckpointError, ConfigError, DataError, LPSNetError
from paddleseg_lpsnet.utils.config import _check_types, load_config

__all__ = ["load_checked_config", "check_component_types", "build_train_dataset", "build_val_dataset",
           "build_dataset", "build_model_checked", "build_error", "set_device"]

_COMPONENT_SECTIONS = ("model", "train_dataset", "val_dataset", "loss", "distill_loss")
_OPTIMIZER_ALIASES = {"sgd": "SGD", "adam": "Adam"}  # lower-case names SegBuilder accepts


def load_checked_config(path, opts=None, **overrides):
    """load_config, after checking the config's component types, keys and class counts
    (before PaddleSeg's own checks, whose messages are multi-line tracebacks)."""
    raw = read_config_dict(path, opts=opts, **overrides) if os.path.isfile(path) else None
    if raw is not None:
        check_component_types(raw, path)
        check_config_dict(raw, path)
    cfg = load_config(path, opts=opts, **overrides)
    check_component_types(cfg.dic, path)
    return cfg


def check_component_types(dic, path):
    """ConfigError for any unknown `type` in the config, with close registered names."""
    import paddleseg  # noqa: F401  (fills PaddleSeg's managers)

    import paddleseg_lpsnet  # noqa: F401  (registers ours)
    for section in _COMPONENT_SECTIONS:
        if section in dic:
            _check_types(dic[section], f"{section} of {path}")
    optimizer = dict(dic.get("optimizer") or {})
    if "type" in optimizer:
        optimizer["type"] = _OPTIMIZER_ALIASES.get(optimizer["type"], optimizer["type"])
        _check_types(optimizer, f"optimizer of {path}")
    scheduler = (dic.get("lr_scheduler") or {}).get("type")
    if scheduler is not None and not isinstance(getattr(paddle.optimizer.lr, str(scheduler), None), type):
        known = [n for n in dir(paddle.optimizer.lr) if isinstance(getattr(paddle.optimizer.lr, n), type)]
        close = difflib.get_close_matches(str(scheduler), known, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"Unknown lr_scheduler type {scheduler!r} in {path}: expected a class of "
                          f"paddle.optimizer.lr.{hint}")


def build_error(exc, key, config_path):
    """The error to raise for `exc` from building config section `key`: one line naming
    the section, the file and the component, with the original error's type when it is
    ours (SegBuilder wraps every failure in a multi-line RuntimeError)."""
    component = ""
    while isinstance(exc, RuntimeError) and str(exc).startswith("Tried to create a ") \
            and exc.__context__ is not None:
        component = f" ({str(exc).split()[4]})"
        exc = exc.__context__
    kind = type(exc) if isinstance(exc, LPSNetError) else ConfigError
    message = " ".join(str(exc).split())
    return kind(f"Cannot build `{key}` of {config_path}{component}: {message}")


def _take_lenient_pretrained(node, keys=()):
    """Set to None, and return as [(attribute path, checkpoint)], every `pretrained` of an
    upstream component in a model config (ours load theirs strictly themselves)."""
    from paddleseg_lpsnet.utils.config import find_component
    taken = []
    if not isinstance(node, dict):
        return taken
    if "type" in node and node.get("pretrained"):
        if not getattr(find_component(node["type"]), "__module__", "").startswith("paddleseg_lpsnet"):
            taken.append((keys, node["pretrained"]))
            node["pretrained"] = None
    for key, value in node.items():
        taken.extend(_take_lenient_pretrained(value, (*keys, key)))
    return taken


def _sublayer(model, keys, key, config_path):
    layer = model
    for name in keys:
        layer = getattr(layer, name, None)
    if not isinstance(layer, paddle.nn.Layer):
        raise ConfigError(f"`{key}` in {config_path}: the built model has no layer "
                          f"model.{'.'.join(keys)} to load the checkpoint into.")
    return layer


def build_model_checked(builder, config_path):
    """`builder.model` (a SegBuilder's), loading every `pretrained` so that nothing is skipped.

    PaddleSeg's own components load `pretrained` with loaders that skip tensors that do
    not fit, with only a warning; here their checkpoints are taken out of the config and
    loaded with utils.checkpoint.load_component_pretrained (every tensor filled, or an
    error naming the key, the file and what does not fit). URLs are downloaded as
    PaddleSeg does.
    """
    from paddleseg_lpsnet.utils.checkpoint import load_component_pretrained
    model_cfg = copy.deepcopy(builder.config.dic.get("model") or {})
    taken = _take_lenient_pretrained(model_cfg)
    builder.config.dic["model"] = model_cfg
    try:
        model = builder.model
    except (RuntimeError, AssertionError, TypeError, ValueError, KeyError) as exc:
        raise build_error(exc, "model", config_path) from exc
    for keys, source in sorted(taken, key=lambda item: -len(item[0])):  # parts before the whole model
        key = ".".join(("model", *keys, "pretrained"))
        layer = _sublayer(model, keys, key, config_path)
        if urlparse(str(source)).netloc:
            from paddleseg.utils.utils import download_pretrained_model
            source = download_pretrained_model(source)
        try:
            load_component_pretrained(layer, source, whole_model=not keys)
        except CheckpointError as exc:
            raise CheckpointError(f"`{key}` in {config_path}: {exc}") from exc
    return model


def set_device(device):
    """paddle.set_device, falling back to CPU (with a message) when `device` is not available."""
    from paddleseg.utils import logger
    available = {"gpu": paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0,
                 "xpu": paddle.is_compiled_with_xpu(), "cpu": True}
    if device not in available:
        available[device] = device in paddle.device.get_all_custom_device_type()
    place = device if available[device] else "cpu"
    if place != device:
        logger.warning(f"--device {device} is not available in this Paddle build; using cpu.")
    paddle.set_device(place)
    return place


def _mode(section, section_cfg):
    return str(section_cfg.get("mode", "train" if section == "train_dataset" else "val")).lower()


def _check_paths(section, section_cfg, config_path):
    root = section_cfg.get("dataset_root")
    if root is not None and not os.path.isdir(root):
        raise DataError(f"{section}.dataset_root in {config_path}: directory {root} does not exist. "
                        "Set it to the dataset's folder (or pass --opts "
                        f"{section}.dataset_root=DIR).")
    key = f"{_mode(section, section_cfg)}_path"
    listed = section_cfg.get(key)
    if section_cfg.get("type") == "Dataset" and listed is None:
        raise DataError(f"{section}.{key} in {config_path} is not set: a `Dataset` in mode "
                        f"{_mode(section, section_cfg)} reads its file list from it.")
    if listed is not None and not os.path.isfile(listed):
        raise DataError(f"{section}.{key} in {config_path}: file list {listed} does not exist. "
                        "Expected a text file with one `image label` pair per line.")


def _check_cityscapes_pairs(dataset, section, root, mode):
    images = glob.glob(os.path.join(root, "leftImg8bit", mode, "*", "*_leftImg8bit.png"))
    labels = glob.glob(os.path.join(root, "gtFine", mode, "*", "*_gtFine_labelTrainIds.png"))
    if len(images) != len(labels):
        raise DataError(f"{section}: {root} has {len(images)} {mode} images but {len(labels)} "
                        "*_gtFine_labelTrainIds.png labels; every leftImg8bit image needs its label "
                        "(`lpsnet data prepare-cityscapes --root ROOT` writes them).")
    for image, label in dataset.file_list:
        stem = os.path.basename(image)[:-len("_leftImg8bit.png")]
        if not os.path.basename(label).startswith(stem + "_"):
            raise DataError(f"{section}: image {image} is paired with label {label}; "
                            "the names must share city_sequence_frame.")


def _check_listed_files(dataset, section):
    missing = [p for entry in getattr(dataset, "file_list", []) for p in entry[:2]
               if p is not None and not os.path.isfile(p)]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataError(f"{section}: listed file {missing[0]} does not exist{more}.")


def build_dataset(cfg, section, config_path, seed=None):
    """Build config section `section` (train_dataset / val_dataset) as a CheckedDataset."""
    from paddleseg.cvlibs import SegBuilder
    section_cfg = cfg.dic.get(section)
    if not section_cfg:
        raise ConfigError(f"{config_path} has no `{section}` section.")
    _check_paths(section, section_cfg, config_path)
    try:
        dataset = SegBuilder(cfg).build_component(section_cfg)
    except (RuntimeError, ValueError, TypeError, OSError) as exc:
        raise DataError(f"{section} ({section_cfg.get('type')}) in {config_path}: {exc}") from exc
    root, mode = section_cfg.get("dataset_root"), _mode(section, section_cfg)
    if len(dataset) == 0:
        raise DataError(f"{section} in {config_path} has no samples (dataset_root {root}, mode {mode})."
                        + _layout_hint(section_cfg.get("type")))
    if type(dataset).__name__ == "Cityscapes":
        _check_cityscapes_pairs(dataset, section, root, mode)
    _check_listed_files(dataset, section)
    return CheckedDataset(dataset, section, seed=seed)


def _layout_hint(dataset_type):
    if dataset_type == "Cityscapes":
        return (" Expected leftImg8bit/<mode>/<city>/*_leftImg8bit.png and "
                "gtFine/<mode>/<city>/*_gtFine_labelTrainIds.png under dataset_root.")
    return " Is the file list empty?"


def build_train_dataset(cfg, config_path, seed=None):
    return build_dataset(cfg, "train_dataset", config_path, seed=seed)


def build_val_dataset(cfg, config_path):
    return build_dataset(cfg, "val_dataset", config_path)
