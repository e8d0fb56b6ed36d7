"""Reading checkpoints and loading them strictly.

PaddleSeg's `load_pretrained_model` skips mismatched tensors with a warning; here a
load either fills every tensor of the target or raises CheckpointError saying what
was missing, unexpected or mis-shaped.
"""
import os
import re
import zipfile

import numpy as np
import paddle
from paddleseg.utils import logger

from paddleseg_lpsnet.errors import CheckpointError

__all__ = [
    "read_state_dict", "strict_load", "load_model_pretrained", "load_backbone_pretrained",
    "load_component_pretrained", "describe_unreadable", "CLASSIFIER_KEYS",
]

# Tensors of the classifier form of a backbone that a segmentation backbone drops.
CLASSIFIER_KEYS = ("fc.",)
_CHECKPOINT_NAMES = ("model.pdparams", "best_model.pdparams", "latest.pdparams")
# Keys of a Paddle optimizer state (model.pdopt): accumulators named after tensors.
_OPTIMIZER_KEY = re.compile(r"(_(velocity|moment\d|beta\d_pow_acc|mean_square|mean_grad|inf_norm)_\d+"
                            r"|^LR_Scheduler|^master_weights)$")


def _resolve(path):
    if os.path.isdir(path):
        for name in _CHECKPOINT_NAMES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise CheckpointError(f"No checkpoint in directory {path}: expected one of {', '.join(_CHECKPOINT_NAMES)}.")
    if not os.path.isfile(path):
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    return path


def describe_unreadable(path):
    """What a file that paddle.load cannot read seems to be, for an error message."""
    size = os.path.getsize(path)
    if size == 0:
        return "it is empty (0 bytes)"
    with open(path, "rb") as f:
        head = f.read(16)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(n.endswith("data.pkl") for n in archive.namelist()):
                return ("it is a PyTorch checkpoint (torch.save); convert it with "
                        f"`lpsnet convert --config CONFIG --src {path} --dst OUT.pdparams`")
        return "it is a zip archive, not a paddle.save file"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return f"it is truncated or corrupt ({size} bytes: a pickle that does not end; an interrupted copy?)"
    return f"it is not a paddle.save file (it starts with {head[:8]!r})"


def _looks_like_optimizer_state(state):
    keys = list(state)
    return bool(keys) and sum(bool(_OPTIMIZER_KEY.search(k)) for k in keys) >= max(1, len(keys) // 2)


def read_state_dict(path):
    """Read a Paddle state dict (.pdparams, or a directory holding model.pdparams).

    Returns {name: numpy array}. Raises CheckpointError saying what the file is instead
    for a missing, empty, truncated, PyTorch or other foreign file, or an optimizer state.
    """
    path = _resolve(path)
    expected = "Expected model weights saved with paddle.save (.pdparams)"
    try:
        state = paddle.load(path, return_numpy=True)
    except Exception as exc:  # paddle raises many types for a bad pickle
        raise CheckpointError(f"Cannot read checkpoint {path}: {describe_unreadable(path)}. {expected}.") from exc
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"Checkpoint {path} holds {type(state).__name__}, not a state dict of tensors. "
                              f"{expected}.")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if _looks_like_optimizer_state(state):
        example = next(k for k in state if _OPTIMIZER_KEY.search(k))
        raise CheckpointError(f"Checkpoint {path} holds an optimizer state (keys such as {example!r}), not model "
                              f"weights. {expected}: in a checkpoint directory, model.pdparams beside model.pdopt.")
    bad = [k for k, v in state.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise CheckpointError(f"Checkpoint {path} is not a state dict of tensors (entry {bad[0]!r} "
                              f"is {type(state[bad[0]]).__name__}). {expected}.")
    return state


def strict_load(layer, state, source):
    """Set every tensor of `layer` from `state`, or raise naming what does not fit.

    `source` names where the state came from, for the messages. Returns the number
    of tensors loaded.
    """
    own = layer.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: checkpoint {list(state[k].shape)} vs model {list(own[k].shape)}"
                  for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
            if items:
                shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
                parts.append(f"{len(items)} {title} ({shown})")
        raise CheckpointError(
            f"Checkpoint {source} does not fit {type(layer).__name__} ({len(own)} tensors): "
            + "; ".join(parts) + ". Is it for another architecture or format? "
            "`lpsnet convert` maps PaddleSeg and authors' checkpoints.")
    layer.set_state_dict({k: state[k] for k in own})
    return len(own)


def load_model_pretrained(model, path):
    """Load a whole-model checkpoint strictly; logs how many tensors were loaded."""
    n = strict_load(model, read_state_dict(path), path)
    logger.info(f"Loaded {n}/{n} tensors of {type(model).__name__} from {path}")
    return n


def backbone_state_from(state):
    """Backbone tensors of a classification or segmentation checkpoint.

    A classification checkpoint holds the backbone's own keys plus its FC (dropped);
    a segmentation checkpoint prefixes them with `backbone.` (head dropped).
    Returns (state, kind, dropped keys).
    """
    if any(k.startswith("backbone.") for k in state):
        dropped = [k for k in state if not k.startswith("backbone.")]
        return ({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")},
                "segmentation", dropped)
    dropped = [k for k in state if k.startswith(CLASSIFIER_KEYS)]
    return {k: v for k, v in state.items() if k not in dropped}, "classification", dropped


def load_backbone_pretrained(backbone, path):
    """Load ImageNet (or segmentation) weights into a backbone; every backbone tensor must load.

    The classifier form of the backbone keeps its FC if the checkpoint has one. Logs
    one line saying how many tensors came from the checkpoint and what was dropped;
    returns the number of tensors loaded.
    """
    path = _resolve(path)
    state = read_state_dict(path)
    kind, dropped = "classifier", []
    if getattr(backbone, "class_num", None) is None:
        state, kind, dropped = backbone_state_from(state)
    n = strict_load(backbone, state, path)
    note = ""
    if dropped:
        shown = ", ".join(dropped[:4]) + (" ..." if len(dropped) > 4 else "")
        note = f"; dropped {len(dropped)} tensors not in the backbone ({shown})"
    logger.info(f"Loaded {n} of {n} backbone tensors of {type(backbone).__name__} from "
                f"{kind} checkpoint {path}{note}")
    return n


def load_component_pretrained(layer, path, whole_model):
    """`pretrained` of a component that would load it leniently (upstream PaddleSeg's).

    A whole-model checkpoint must fit exactly (strict_load). For a part (a backbone),
    every tensor of the part must load; tensors the part lacks (an ImageNet classifier)
    are dropped and listed in the log, as are a segmentation checkpoint's non-backbone
    tensors. Returns the number of tensors loaded.
    """
    state = read_state_dict(path)
    if whole_model:
        return load_model_pretrained(layer, path)
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    own = layer.state_dict()
    extra = [k for k in state if k not in own]
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        logger.info(f"Dropping {len(extra)} tensors of {path} that {type(layer).__name__} does not have ({shown})")
    n = strict_load(layer, {k: v for k, v in state.items() if k in own}, path)
    logger.info(f"Loaded {n}/{n} tensors of {type(layer).__name__} from {path}")
    return n
