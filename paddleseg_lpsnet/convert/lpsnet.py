"""Checkpoint formats for LPSNetSeg.

- paddleseg-lpsnet: PaddleSeg's `LPSNet` model.pdparams
  (nets.{path}.{stage}.{block}._conv / ._batch_norm, head).
- authors-lpsnet: the authors' PyTorch `lpsnet.py` (net | netH, netL | net1..net3,
  .stages.{stage}.{block}.{0 conv, 1 bn}, head), train form (with BN) or deploy form
  (conv with bias, no BN; mapped exactly onto an identity BN).
- lpsnet-imagenet: this project's ImageNet classifier (paths.*, fc.*): the backbone
  is filled, the FC dropped and the segmentation head left at its initial values.

Paths are matched in order, highest ratio first (as our backbone sorts them).
"""
import re

import numpy as np

from paddleseg_lpsnet.convert import SourceFormat, register_format

_BN_PADDLE = ("weight", "bias", "_mean", "_variance")
_BN_TORCH = {"weight": "weight", "bias": "bias", "running_mean": "_mean", "running_var": "_variance"}
_AUTHOR_PATHS = {1: ("net",), 2: ("netH", "netL"), 3: ("net1", "net2", "net3")}


def _is_lpsnet(model):
    return type(model).__name__ == "LPSNetSeg"


def _block_prefix(path, stage, block):
    return f"backbone.paths.{path}.stages.{stage}.{block}"


# -- PaddleSeg's LPSNet ------------------------------------------------------------
_PADDLESEG_KEY = re.compile(r"^nets\.(\d+)\.(\d+)\.(\d+)\.(_conv|_batch_norm)\.(\w+)$")


def _detect_paddleseg(state, model):
    return _is_lpsnet(model) and any(_PADDLESEG_KEY.match(k) for k in state) and "head.weight" in state


def _map_paddleseg(state, model):
    renamed = {}
    for key, arr in state.items():
        m = _PADDLESEG_KEY.match(key)
        if m:
            p, s, b, part, leaf = m.groups()
            dst = f"{_block_prefix(p, s, b)}.{'conv' if part == '_conv' else 'bn'}.{leaf}"
            renamed[key] = (dst, arr)
        elif key in ("head.weight", "head.bias"):
            renamed[key] = (key.replace("head.", "head.classifier."), arr)
    return renamed, [], []


# -- the authors' PyTorch code -----------------------------------------------------
_AUTHOR_KEY = re.compile(r"^(net|netH|netL|net1|net2|net3)\.stages\.(\d+)\.(\d+)\.([01])\.(\w+)$")


def _detect_authors(state, model):
    return _is_lpsnet(model) and any(_AUTHOR_KEY.match(k) for k in state)


def _map_authors(state, model):
    names = sorted({m.group(1) for m in map(_AUTHOR_KEY.match, state) if m})
    n_paths = len(names)
    order = _AUTHOR_PATHS.get(n_paths)
    if order is None or sorted(order) != names:
        return {}, [], []  # convert_state reports every key as unmapped
    path_index = {name: i for i, name in enumerate(order)}
    deploy = not any(k.endswith(".1.running_mean") for k in state if _AUTHOR_KEY.match(k))
    renamed, dropped = {}, []
    for key, arr in state.items():
        m = _AUTHOR_KEY.match(key)
        if m:
            name, s, b, idx, leaf = m.groups()
            prefix = _block_prefix(path_index[name], s, b)
            if idx == "0" and leaf == "weight":
                renamed[key] = (f"{prefix}.conv.weight", arr)
            elif idx == "0" and leaf == "bias" and deploy:
                # conv(x) + b == BN(conv(x)) with mean 0, var 1 - eps, gamma 1, beta b.
                renamed[key] = (f"{prefix}.bn.bias", arr)
            elif idx == "1" and leaf in _BN_TORCH:
                renamed[key] = (f"{prefix}.bn.{_BN_TORCH[leaf]}", arr)
            elif idx == "1" and leaf == "num_batches_tracked":
                dropped.append(key)
        elif key in ("head.weight", "head.bias"):
            renamed[key] = (key.replace("head.", "head.classifier."), arr)
    if deploy:
        _add_identity_bn(renamed, model)
    return renamed, dropped, []


def _add_identity_bn(renamed, model):
    """Fill the BN statistics of a deploy-form source so that BN is the identity (+ bias)."""
    own = model.state_dict()
    for key, value in own.items():
        m = re.match(r"^(backbone\.paths\.\d+\.stages\.\d+\.\d+)\.bn\.(weight|_mean|_variance)$", key)
        if not m:
            continue
        eps = _bn_epsilon(model, m.group(1))
        fill = {"weight": 1.0, "_mean": 0.0, "_variance": 1.0 - eps}[m.group(2)]
        renamed[f"<identity-bn>{key}"] = (key, np.full(value.shape, fill, dtype="float32"))


def _bn_epsilon(model, prefix):
    layer = model
    for part in prefix.split("."):
        layer = layer[int(part)] if part.isdigit() else getattr(layer, part)
    return layer.bn._epsilon


# -- our ImageNet classifier ---------------------------------------------------------
def _detect_classifier(state, model):
    return _is_lpsnet(model) and any(k.startswith("paths.") for k in state) and "fc.weight" in state


def _map_classifier(state, model):
    renamed = {k: (f"backbone.{k}", v) for k, v in state.items() if k.startswith("paths.")}
    dropped = [k for k in state if k.startswith("fc.")]
    fresh = [k for k in model.state_dict() if k.startswith("head.")]
    return renamed, dropped, fresh


register_format(SourceFormat("paddleseg-lpsnet", _detect_paddleseg, _map_paddleseg,
                             "PaddleSeg LPSNet model.pdparams"))
register_format(SourceFormat("authors-lpsnet", _detect_authors, _map_authors,
                             "YihengZhang-CV/LPS-Net lpsnet.py checkpoint (.pth)"))
register_format(SourceFormat("lpsnet-imagenet", _detect_classifier, _map_classifier,
                             "paddleseg-lpsnet ImageNet classifier (lpsnet pretrain)"))
