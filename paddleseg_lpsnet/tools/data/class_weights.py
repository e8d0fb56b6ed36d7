"""lpsnet data class-weights: ENet class weights from a config's training labels.

Counts the pixels of every class over the labels of the config's train_dataset
(as stored, before any transform), computes w_c = 1 / ln(c + p_c) and prints the
config's `loss` section with these weights on every CrossEntropyLoss, ready to
paste (a `_base_` merge replaces lists whole, so the section is printed entire).
"""
import copy
import sys

from paddleseg_lpsnet.errors import ConfigError, DataError


def add_arguments(parser):
    parser.add_argument("--config", required=True, help="config whose train_dataset labels are counted")
    parser.add_argument("--enet_c", type=float, default=1.1,
                        help="the constant c of 1/ln(c + p) (default 1.1; ENet used 1.02)")
    parser.add_argument("--max_images", type=int, default=None,
                        help="count only the first N labels (a quick estimate)")
    parser.add_argument("--opts", nargs="+", default=None, help="config overrides key=value")


def _train_dataset(cfg, path):
    """The config's train_dataset, built quietly (SegBuilder's property prints it on stdout)."""
    import paddleseg_lpsnet  # noqa: F401  (registers our datasets)
    from paddleseg.cvlibs import SegBuilder
    dataset_cfg = cfg.train_dataset_cfg
    if not dataset_cfg:
        raise ConfigError(f"Config {path} has no train_dataset to count labels from.")
    try:
        return SegBuilder(cfg).build_component(dataset_cfg)
    except Exception as exc:  # the builder re-raises anything as RuntimeError
        cause = exc.__context__ if isinstance(exc.__context__, DataError) else exc
        if isinstance(cause, DataError):
            raise cause from None
        raise DataError(f"Cannot build the train_dataset of {path}: {exc}") from exc


def _label_paths(dataset, max_images):
    paths = [label for _, label in dataset.file_list if label]
    if not paths:
        raise DataError(f"{type(dataset).__name__} lists no labels to count.")
    return paths[:max_images] if max_images else paths


def weighted_loss_section(loss_cfg, weights):
    """A copy of a config's loss section with `weights` on every CrossEntropyLoss (or a new one)."""
    loss = copy.deepcopy(loss_cfg) if loss_cfg else {}
    types = loss.get("types") or []
    ce = [t for t in types if t.get("type") == "CrossEntropyLoss"]
    if not ce:
        return {"types": [{"type": "CrossEntropyLoss", "weight": weights}], "coef": [1]}
    for t in ce:
        t["weight"] = list(weights)
    return loss


def format_snippet(loss, counts, c, n_labels, dataset):
    import yaml
    header = [f"# ENet class weights 1/ln({c} + p_c) from {n_labels} labels of "
              f"{type(dataset).__name__} ({getattr(dataset, 'dataset_root', '?')}).",
              "# pixels per class: " + ", ".join(f"{i}: {int(n)}" for i, n in enumerate(counts))]
    body = yaml.safe_dump({"loss": loss}, default_flow_style=None, sort_keys=False)
    return "\n".join(header) + "\n" + body


def run(args):
    from tqdm import tqdm

    from paddleseg_lpsnet.utils.class_weights import (count_label_pixels, enet_class_weights,
                                                      read_index_label)
    from paddleseg_lpsnet.utils.config import load_config

    if args.max_images is not None and args.max_images < 1:
        raise ConfigError(f"--max_images must be >= 1, got {args.max_images}.")
    cfg = load_config(args.config, opts=args.opts)
    dataset = _train_dataset(cfg, args.config)
    paths = _label_paths(dataset, args.max_images)
    read = getattr(dataset, "read_label", read_index_label)
    progress = tqdm(paths, desc="counting labels", file=sys.stderr, disable=not sys.stderr.isatty())
    counts = count_label_pixels(progress, dataset.num_classes, dataset.ignore_index, read)
    weights = [round(float(w), 4) for w in enet_class_weights(counts, args.enet_c)]
    loss = weighted_loss_section(cfg.dic.get("loss"), weights)
    print(format_snippet(loss, counts, args.enet_c, len(paths), dataset), end="")
    return 0
