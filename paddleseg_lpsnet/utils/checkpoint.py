"""Reading checkpoints and loading them strictly.

PaddleSeg's `load_pretrained_model` skips mismatched tensors with a warning; here a
load either fills every tensor of the target or raises CheckpointError saying what
was missing, unexpected or mis-shaped.
"""
import os

import numpy as np
import paddle
from paddleseg.utils import logger

from paddleseg_lpsnet.errors import CheckpointError

__all__ = [
    "read_state_dict", "strict_load", "load_model_pretrained", "load_backbone_pretrained",
    "CLASSIFIER_KEYS",
]

# Tensors of the classifier form of a backbone that a segmentation backbone drops.
CLASSIFIER_KEYS = ("fc.",)
_CHECKPOINT_NAMES = ("model.pdparams", "best_model.pdparams", "latest.pdparams")


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


def read_state_dict(path):
    """Read a Paddle state dict (.pdparams, or a directory holding model.pdparams).

    Returns {name: numpy array}. Raises CheckpointError for a missing, truncated or
    non-Paddle file.
    """
    path = _resolve(path)
    try:
        state = paddle.load(path, return_numpy=True)
    except Exception as exc:  # paddle raises many types for a bad pickle
        raise CheckpointError(f"Cannot read checkpoint {path}: {type(exc).__name__}: {exc}. "
                              "Expected a state dict saved with paddle.save (.pdparams).") from exc
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"Checkpoint {path} holds {type(state).__name__}, not a state dict of tensors.")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    bad = [k for k, v in state.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise CheckpointError(f"Checkpoint {path} is not a state dict of tensors (entry {bad[0]!r} "
                              f"is {type(state[bad[0]]).__name__}); an optimizer state (.pdopt)?")
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
