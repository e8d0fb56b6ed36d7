"""Checks of a config before PaddleSeg builds it; every error names the key and the file.

PaddleSeg 2.8 ignores what it does not read: a misspelt top-level key (`iter: 1000`),
`loss.coefs`, `test_config.is_slid` change nothing, silently. Here they are errors
with the closest valid names suggested, as are:

- a component argument its class does not take (checked against the signature, for
  classes without **kwargs; the others fail when built, naming the argument);
- lr_scheduler arguments its paddle.optimizer.lr class does not take;
- `num_classes` of the model disagreeing with a dataset's (a generic `Dataset`'s
  `num_classes`, or a dataset class's NUM_CLASSES), which PaddleSeg reports with a
  multi-line traceback or not at all (val_dataset);
- `loss.types` and `loss.coef` of incompatible lengths, and a per-class loss `weight`
  whose length is not num_classes.

Unknown component types are checked by core.builder.check_component_types.
Other modules add the top-level sections they read to TOP_LEVEL_KEYS.
"""
import difflib
import inspect

import paddle

from paddleseg_lpsnet.errors import ConfigError

__all__ = ["TOP_LEVEL_KEYS", "LOSS_SECTIONS", "TEST_CONFIG_KEYS", "check_config_dict", "read_config_dict"]

# PaddleSeg's sections, plus `sync_bn` (core/train.py) and `distill` (distillation).
TOP_LEVEL_KEYS = {"batch_size", "iters", "train_dataset", "val_dataset", "model", "optimizer", "lr_scheduler",
                  "loss", "distill_loss", "test_config", "export", "to_static_training", "sync_bn", "distill",
                  "_inherited_"}
LOSS_SECTIONS = ("loss", "distill_loss")
# What `lpsnet val` and evaluation during training read from test_config.
TEST_CONFIG_KEYS = ("aug_eval", "scales", "flip_horizontal", "flip_vertical", "is_slide", "crop_size", "stride",
                    "rescale")
_COMPONENT_SECTIONS = ("model", "train_dataset", "val_dataset", "optimizer", "loss", "distill_loss")
_LR_BUILDER_KEYS = ("type", "warmup_iters", "warmup_start_lr")  # read by SegBuilder.lr_scheduler itself


def read_config_dict(path, opts=None, **overrides):
    """The config as PaddleSeg merges it (`_base_`, overrides, --opts), unchecked; None if
    it does not parse (load_config then reports why)."""
    from paddleseg.cvlibs.config import parse_from_yaml, update_config_dict
    try:
        return update_config_dict(parse_from_yaml(path), opts=opts, **overrides)
    except Exception:  # noqa: BLE001  (yaml and assertion errors: load_config's to report)
        return None


def _suggest(name, known):
    close = difflib.get_close_matches(str(name), sorted(known), n=3, cutoff=0.6)
    return f" Did you mean {', '.join(close)}?" if close else ""


def _unknown(keys, known, where, path, what):
    for key in keys:
        if key not in known:
            raise ConfigError(f"Unknown key `{where}{key}` in {path}: {what}.{_suggest(key, known)} "
                              f"Accepted: {', '.join(sorted(k for k in known if not k.startswith('_')))}.")


def _takes(callable_):
    """(argument names, whether it takes **kwargs) of a class or function."""
    try:
        params = inspect.signature(callable_).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def _component_class(node, key):
    from paddleseg_lpsnet.utils.config import find_component
    kind = node["type"]
    if key == "optimizer":  # SegBuilder's renames
        kind = {"sgd": "SGD", "adam": "Adam"}.get(kind, kind)
        if kind == "SGD" and "momentum" in node:
            kind = "Momentum"
    return find_component(kind)


def _check_arguments(node, where, path, key=None):
    """Every `type` dict under `node`: its keys must be arguments of its class."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_arguments(item, f"{where}[{i}]", path)
        return
    if not isinstance(node, dict):
        return
    if "type" in node:
        cls = _component_class(node, key)
        names, any_kwargs = _takes(cls)
        built = getattr(cls, "__name__", node["type"])
        name = node["type"] if built == node["type"] else f"{node['type']} (built as {built})"
        if not any_kwargs:
            _unknown([k for k in node if k != "type"], names, f"{where}.", path, f"{name} takes no such argument")
    for sub, value in node.items():
        _check_arguments(value, f"{where}.{sub}", path)


def _check_lr_scheduler(section, path):
    kind = section.get("type")
    cls = getattr(paddle.optimizer.lr, str(kind), None)
    if not isinstance(cls, type):
        return  # an unknown type: check_component_types names it
    names, any_kwargs = _takes(cls)
    if not any_kwargs:
        _unknown(section, names | set(_LR_BUILDER_KEYS), "lr_scheduler.", path,
                 f"paddle.optimizer.lr.{kind} takes no such argument")


def _check_loss(section, name, path):
    _unknown(section, {"types", "coef"}, f"{name}.", path, "a loss section has `types` and `coef`")
    types, coef = section.get("types"), section.get("coef")
    for key, value in (("types", types), ("coef", coef)):
        if not isinstance(value, list) or not value:
            raise ConfigError(f"`{name}.{key}` in {path} must be a non-empty list, not {value!r}.")
    if len(types) != len(coef) and len(types) != 1:
        raise ConfigError(f"`{name}.types` has {len(types)} entries but `{name}.coef` has {len(coef)} in {path}: "
                          f"give one type (used for every coef) or one type per coef.")


def _class_count_sources(dic):
    """[(key naming it, number of classes)] from the model and the datasets."""
    from paddleseg_lpsnet.utils.config import find_component
    sources = []
    model = dic.get("model") or {}
    if "num_classes" in model:
        sources.append(("model.num_classes", model["num_classes"]))
    for section in ("train_dataset", "val_dataset"):
        cfg = dic.get(section) or {}
        if "num_classes" in cfg:
            sources.append((f"{section}.num_classes", cfg["num_classes"]))
        elif "type" in cfg:
            count = getattr(find_component(cfg["type"]), "NUM_CLASSES", None)
            if count is not None:
                sources.append((f"{section} ({cfg['type']}.NUM_CLASSES)", count))
    return sources


def _check_num_classes(dic, path):
    sources = _class_count_sources(dic)
    for key, count in sources:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ConfigError(f"`{key}` in {path} must be a positive integer, not {count!r}.")
    for key, count in sources[1:]:
        first_key, first = sources[0]
        if count != first:
            raise ConfigError(f"`{first_key}` is {first} but `{key}` is {count} in {path}: the model must "
                              "predict one channel per class of the datasets; make them agree.")
    if sources:
        _check_class_weights(dic, sources[0], path)


def _check_class_weights(dic, source, path):
    key, count = source
    for name in LOSS_SECTIONS:
        for i, loss in enumerate((dic.get(name) or {}).get("types") or []):
            weight = loss.get("weight") if isinstance(loss, dict) else None
            if isinstance(weight, list) and len(weight) != count:
                raise ConfigError(f"`{name}.types[{i}].weight` has {len(weight)} values but `{key}` is {count} "
                                  f"in {path}: give one weight per class.")


def check_config_dict(dic, path):
    """ConfigError for any problem listed in the module doc; `path` names the file."""
    if not isinstance(dic, dict):
        raise ConfigError(f"Config {path} must be a mapping of sections, not {type(dic).__name__}.")
    _unknown(dic, TOP_LEVEL_KEYS, "", path, "not a section lpsnet or PaddleSeg reads")
    for name in LOSS_SECTIONS:
        if isinstance(dic.get(name), dict):
            _check_loss(dic[name], name, path)
    if isinstance(dic.get("test_config"), dict):
        _unknown(dic["test_config"], set(TEST_CONFIG_KEYS), "test_config.", path, "not an evaluation option")
    for section in _COMPONENT_SECTIONS:
        if section in dic:
            _check_arguments(dic[section], section, path, key=section)
    if isinstance(dic.get("lr_scheduler"), dict):
        _check_lr_scheduler(dic["lr_scheduler"], path)
    _check_num_classes(dic, path)
