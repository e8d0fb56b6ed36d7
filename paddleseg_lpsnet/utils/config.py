"""Loading PaddleSeg configs and building their components, with clear errors."""
import copy
import difflib
import os

from paddleseg_lpsnet.errors import ConfigError

__all__ = ["load_config", "build_model", "null_pretrained", "component_names", "find_component",
           "build_model_with_weights"]


def load_config(path, opts=None, **overrides):
    """A `paddleseg.cvlibs.Config` for `path` with `--opts key=value` overrides.

    `overrides` are Config's own (learning_rate, batch_size, iters). Raises
    ConfigError naming the file when it is missing or does not parse.
    """
    from paddleseg.cvlibs import Config
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path} does not exist.")
    if not path.endswith((".yml", ".yaml")):
        raise ConfigError(f"Config file {path} must be YAML (.yml or .yaml).")
    try:
        return Config(path, opts=opts, **overrides)
    except (AssertionError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"Config {path}: {exc}") from exc
    except Exception as exc:  # yaml errors and the like
        raise ConfigError(f"Config {path} cannot be read: {type(exc).__name__}: {exc}") from exc


def null_pretrained(cfg):
    """Copy of a model config dict with every `pretrained` key (at any depth) set to None."""
    cfg = copy.deepcopy(cfg)

    def walk(node):
        if isinstance(node, dict):
            for key in node:
                if key == "pretrained":
                    node[key] = None
                else:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(cfg)
    return cfg


def component_names():
    """Every registered component name, across PaddleSeg's managers."""
    from paddleseg.cvlibs import manager
    names = []
    for mgr in (manager.MODELS, manager.BACKBONES, manager.DATASETS, manager.TRANSFORMS,
                manager.LOSSES, manager.OPTIMIZERS):
        names.extend(mgr.components_dict)
    return names


def find_component(name, where=""):
    """The registered class or factory called `name`, or ConfigError with close names."""
    from paddleseg.cvlibs import manager
    for mgr in (manager.MODELS, manager.BACKBONES, manager.DATASETS, manager.TRANSFORMS,
                manager.LOSSES, manager.OPTIMIZERS):
        if name in mgr.components_dict:
            return mgr.components_dict[name]
    close = difflib.get_close_matches(str(name), component_names(), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"Unknown component type {name!r}{' in ' + where if where else ''}.{hint}")


def _check_types(node, where):
    if isinstance(node, dict):
        if "type" in node:
            find_component(node["type"], where)
        for key, value in node.items():
            _check_types(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _check_types(item, f"{where}[{i}]")


def build_model(config, pretrained=False):
    """Build the model of a Config offline; `pretrained=False` nulls every `pretrained`."""
    import paddleseg_lpsnet  # noqa: F401  (registers our components)
    from paddleseg.cvlibs import SegBuilder
    model_cfg = config.dic.get("model")
    if not model_cfg:
        raise ConfigError("The config has no `model` section.")
    _check_types(model_cfg, "model")
    if not pretrained:
        config.dic["model"] = null_pretrained(model_cfg)
    try:
        return SegBuilder(config).model
    except (AssertionError, RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"Cannot build the model: {exc}") from exc


def _pretrained_values(node):
    """Every non-empty `pretrained` value in a model config, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pretrained" and value:
                yield str(value)
            else:
                yield from _pretrained_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _pretrained_values(item)


def build_model_with_weights(config, model_path=None):
    """The model of `config` in eval mode, with weights for predicting or exporting.

    With `model_path` the checkpoint is loaded strictly (every tensor must fit) and
    the config's `pretrained` entries are ignored; without it the config's own
    `pretrained` entries are loaded as the config says. Returns (model, source),
    source naming where the weights came from.
    """
    from paddleseg_lpsnet.utils.checkpoint import load_model_pretrained
    if model_path:
        model = build_model(config, pretrained=False)
        load_model_pretrained(model, model_path)
        source = model_path
    else:
        model = build_model(config, pretrained=True)
        names = list(_pretrained_values(config.dic.get("model")))
        source = ", ".join(names) if names else "random initialisation (no --model_path, no `pretrained` in the config)"
    model.eval()
    return model, source
