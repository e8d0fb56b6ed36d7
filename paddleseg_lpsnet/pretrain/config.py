"""PaddleClas configs: read with PaddleClas's own parser, checked for our trainer.

`load_ppcls_config` reads a YAML and applies `-o Key.path=value` overrides with
PaddleClas's `get_config` (from a source tree's `ppcls` or the wheel's
`paddleclas.ppcls`), so both trainers see exactly what PaddleClas would.

`check_trainer_config` is for the project's trainer only: PaddleClas ignores keys it
does not know, but our trainer implements a subset of PaddleClas, so a key it would
not honour (or a misspelt one) is an error naming the key, never silently ignored.
"""
import difflib
import os

from paddleseg_lpsnet.errors import ConfigError

__all__ = ["load_ppcls_config", "check_trainer_config", "check_known_keys", "SECTIONS"]

# What the project's trainer honours, section by section. Keys listed under
# OTHER_MODES belong to PaddleClas's infer/export modes and are accepted unused.
SECTIONS = ("Global", "Arch", "Loss", "Optimizer", "DataLoader", "Infer", "Metric")
GLOBAL_KEYS = {
    "checkpoints", "pretrained_model", "output_dir", "device", "save_interval",
    "eval_during_train", "eval_interval", "start_eval_epoch", "epochs", "print_batch_step",
    "use_visualdl", "seed", "class_num", "log_ranks",
}
OTHER_MODES = {"image_shape", "save_inference_dir", "infer_imgs", "inference_model_dir"}
# Global keys whose PaddleClas default is the only value our trainer supports.
GLOBAL_DEFAULTS = {"to_static": False, "use_dali": False, "update_freq": 1,
                   "eval_mode": "classification", "use_multilabel": False, "train_mode": None}
DATASET_KEYS = {"name", "image_root", "cls_label_path", "transform_ops", "delimiter", "relabel"}
SAMPLER_KEYS = {"name", "batch_size", "drop_last", "shuffle"}
LOADER_KEYS = {"num_workers", "use_shared_memory"}
SAMPLERS = ("DistributedBatchSampler", "BatchSampler")
LOSSES = {"CELoss": {"weight", "epsilon"}}
METRICS = {"TopkAcc": {"topk"}}
DEVICES = ("cpu", "gpu", "xpu", "npu", "mlu")


def _ppcls_config_module():
    """PaddleClas's config module: a source tree's if importable, else the wheel's."""
    try:
        from ppcls.utils import config
    except ImportError:
        from paddleclas.ppcls.utils import config
    return config


def load_ppcls_config(path, overrides=None):
    """The config at `path` with PaddleClas `-o` overrides applied (an AttrDict).

    Raises ConfigError naming the file or the override that is wrong.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path} does not exist.")
    config_module = _ppcls_config_module()
    try:
        config = config_module.parse_config(path)
    except Exception as exc:  # yaml errors and the like
        raise ConfigError(f"Config {path} cannot be read: {type(exc).__name__}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"Config {path} is not a mapping of sections ({', '.join(SECTIONS)}).")
    for option in overrides or []:
        if option.count("=") != 1 or not option.split("=")[0]:
            raise ConfigError(f"Override {option!r} must be Key.path=value with a single '=' "
                              "(PaddleClas's -o syntax), e.g. Global.epochs=10.")
        try:
            config_module.override_config(config, [option])
        except (AssertionError, IndexError, KeyError, TypeError) as exc:
            raise ConfigError(f"Override {option!r} does not fit {path}: {exc}") from exc
    return config


def check_known_keys(keys, allowed, where):
    """Raise ConfigError for the first key of `keys` not in `allowed`, with close names."""
    for key in keys:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=2, cutoff=0.6)
            hint = f" Did you mean {' or '.join(close)}?" if close else ""
            raise ConfigError(
                f"{where}.{key} is not honoured by paddleseg-lpsnet's trainer.{hint} It reads "
                f"{where}: {', '.join(sorted(allowed))}. For other PaddleClas features run "
                "PaddleClas's own Engine (put a PaddleClas source tree on PYTHONPATH).")


def _section(config, name, kind=dict):
    value = config.get(name)
    if not isinstance(value, kind):
        raise ConfigError(f"The config needs a {name} section ({kind.__name__}), got {value!r}.")
    return value


def _check_global(config):
    glob = _section(config, "Global")
    for key, default in GLOBAL_DEFAULTS.items():
        if key in glob and glob[key] != default:
            raise ConfigError(f"Global.{key}: {glob[key]!r} is not supported by paddleseg-lpsnet's "
                              f"trainer (only {default!r}); PaddleClas's own Engine supports it.")
    check_known_keys(glob, GLOBAL_KEYS | OTHER_MODES | set(GLOBAL_DEFAULTS), "Global")
    for key in ("epochs", "output_dir", "device"):
        if glob.get(key) in (None, ""):
            raise ConfigError(f"Global.{key} must be set.")
    if not isinstance(glob["epochs"], int) or glob["epochs"] < 1:
        raise ConfigError(f"Global.epochs must be a positive integer, got {glob['epochs']!r}.")
    if str(glob["device"]).split(":")[0] not in DEVICES:
        raise ConfigError(f"Global.device {glob['device']!r}: expected one of {', '.join(DEVICES)}.")


def _check_named_list(items, known, where):
    """A list of {Name: {params}} entries, e.g. Loss.Train or Metric.Eval."""
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where} must be a non-empty list of {{Name: params}} entries.")
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{where}: each entry must be a single {{Name: params}}, got {item!r}.")
        name, params = next(iter(item.items()))
        check_known_keys([name], set(known), where)
        check_known_keys(params or {}, known[name], f"{where}.{name}")


def _check_dataloader(config):
    loaders = _section(config, "DataLoader")
    for mode in ("Train", "Eval"):
        if mode == "Eval" and not config["Global"].get("eval_during_train", True):
            continue
        part = loaders.get(mode)
        if not isinstance(part, dict) or not isinstance(part.get("dataset"), dict):
            raise ConfigError(f"DataLoader.{mode}.dataset must be set.")
        check_known_keys(part, {"dataset", "sampler", "loader"}, f"DataLoader.{mode}")
        dataset = part["dataset"]
        check_known_keys(dataset, DATASET_KEYS, f"DataLoader.{mode}.dataset")
        if dataset.get("name") != "ImageNetDataset":
            raise ConfigError(f"DataLoader.{mode}.dataset.name {dataset.get('name')!r}: "
                              "paddleseg-lpsnet's trainer reads ImageNetDataset file lists.")
        sampler = part.get("sampler") or {}
        check_known_keys(sampler, SAMPLER_KEYS, f"DataLoader.{mode}.sampler")
        if sampler.get("name", SAMPLERS[0]) not in SAMPLERS:
            raise ConfigError(f"DataLoader.{mode}.sampler.name {sampler.get('name')!r}: expected "
                              f"one of {', '.join(SAMPLERS)}.")
        check_known_keys(part.get("loader") or {}, LOADER_KEYS, f"DataLoader.{mode}.loader")


def check_trainer_config(config):
    """Raise ConfigError unless paddleseg-lpsnet's trainer honours every key of `config`."""
    amp = config.get("AMP") or {}
    if amp.get("use_amp", False):
        raise ConfigError("AMP.use_amp: True is not supported by paddleseg-lpsnet's trainer; "
                          "PaddleClas's own Engine supports it.")
    check_known_keys(config, set(SECTIONS) | {"AMP"}, "config")
    _check_global(config)
    arch = _section(config, "Arch")
    if not arch.get("name"):
        raise ConfigError("Arch.name must name an architecture, e.g. LPSNet_M.")
    loss = _section(config, "Loss")
    _check_named_list(loss.get("Train"), LOSSES, "Loss.Train")
    if "Eval" in loss:
        _check_named_list(loss["Eval"], LOSSES, "Loss.Eval")
    metric = config.get("Metric") or {}
    for mode in ("Train", "Eval"):
        if metric.get(mode):
            _check_named_list(metric[mode], METRICS, f"Metric.{mode}")
    _section(config, "Optimizer")  # optim.py checks its keys
    _check_dataloader(config)
