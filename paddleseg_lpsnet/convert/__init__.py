"""Checkpoint conversion: foreign layouts -> this project's models.

A *source format* recognises a state dict (`detect`) and renames its tensors into
the target model's keys (`mapping`). `convert_state` then checks the result
strictly: every source tensor is used (or explicitly dropped), every model tensor
is filled (except those the format declares freshly initialised, such as a
segmentation head when converting an ImageNet classifier), and shapes match.

Formats register with `register_format`; the model families add theirs in their
own modules (lpsnet.py here; PMSDSEN and FasterSeg beside it).
"""
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List

import numpy as np

from paddleseg_lpsnet.errors import CheckpointError

__all__ = ["SourceFormat", "register_format", "FORMATS", "read_source", "convert_state",
           "ConversionReport"]


@dataclass
class SourceFormat:
    """A checkpoint layout we can read.

    Args:
        name: Short name shown to the user (e.g. "paddleseg-lpsnet").
        detect: f(state, model) -> bool, True if `state` is in this layout for `model`.
        mapping: f(state, model) -> (renamed, dropped, fresh): `renamed` maps source
            key -> (model key, array); `dropped` lists source keys deliberately not
            used (e.g. num_batches_tracked); `fresh` lists model keys left at their
            initial values on purpose.
    """
    name: str
    detect: Callable
    mapping: Callable
    description: str = ""


FORMATS: List[SourceFormat] = []


def register_format(fmt):
    """Add a SourceFormat to the formats `convert_state` tries, in order."""
    if any(f.name == fmt.name for f in FORMATS):
        raise ValueError(f"Checkpoint format {fmt.name!r} is registered twice.")
    FORMATS.append(fmt)
    return fmt


@dataclass
class ConversionReport:
    format: str
    mapped: int
    dropped: List[str] = field(default_factory=list)
    fresh: List[str] = field(default_factory=list)

    def summary(self):
        text = f"format {self.format}: mapped {self.mapped} tensors"
        if self.dropped:
            text += f", dropped {len(self.dropped)} ({', '.join(self.dropped[:4])}{' ...' if len(self.dropped) > 4 else ''})"
        if self.fresh:
            text += f", {len(self.fresh)} left at initial values ({', '.join(self.fresh[:4])}{' ...' if len(self.fresh) > 4 else ''})"
        return text


def _to_numpy(value):
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # torch tensor
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy"):  # paddle tensor
        return value.numpy()
    return None


def _flatten_container(obj, path):
    """The tensor dict inside a checkpoint (plain, or under state_dict/model/net)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "net", "model_state"):
            if key in obj and isinstance(obj[key], dict):
                return _flatten_container(obj[key], path)
        tensors = {}
        for k, v in obj.items():
            arr = _to_numpy(v)
            if arr is not None:
                tensors[str(k)] = arr
        if tensors:
            return tensors
    raise CheckpointError(f"{path} holds no tensors: expected a state dict (or a dict with 'state_dict').")


def _numpy_scalar_globals():
    """What a pickled numpy scalar needs, for torch.load(weights_only=True)."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    # a dtype unpickles through its class (numpy.dtype[float64], numpy.dtypes.Float64DType)
    return [scalar, np.dtype] + [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]


def read_source(path):
    """Read a checkpoint of any supported framework into {key: numpy array}.

    .pdparams is read with paddle; .pth/.pt/.pth.tar with torch (the optional
    `torch` extra), using weights_only=True with numpy scalars allowed (training
    scripts store metrics such as a numpy mIoU beside the weights).
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"Source checkpoint {path} does not exist.")
    lower = path.lower()
    if lower.endswith((".pth", ".pt", ".pth.tar", ".tar", ".ckpt")):
        try:
            import torch
        except ImportError as exc:
            raise CheckpointError(
                f"Reading the PyTorch checkpoint {path} needs torch, which is not installed. "
                "Install it with `pip install paddleseg-lpsnet[torch]` (or `pip install torch`).") from exc
        try:
            with torch.serialization.safe_globals(_numpy_scalar_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"Cannot read PyTorch checkpoint {path}: {type(exc).__name__}: {exc}") from exc
        return _flatten_container(obj, path)
    import paddle
    try:
        obj = paddle.load(path, return_numpy=True)
    except Exception as exc:
        raise CheckpointError(f"Cannot read checkpoint {path}: {type(exc).__name__}: {exc}. "
                              "Expected a .pdparams (paddle.save) or a .pth (torch.save) file.") from exc
    return _flatten_container(obj, path)


def convert_state(state, model, source="checkpoint", formats=None):
    """Map `state` into `model`'s keys through the first format that detects it.

    Returns (new_state, report). Raises CheckpointError when no format recognises
    the state, or when the mapping leaves anything unmapped or mis-shaped.
    """
    formats = FORMATS if formats is None else formats
    for fmt in formats:
        if fmt.detect(state, model):
            break
    else:
        sample = ", ".join(list(state)[:5])
        names = ", ".join(f.name for f in formats)
        raise CheckpointError(
            f"{source}: layout not recognised for {type(model).__name__} (first keys: {sample}). "
            f"Known formats: {names}.")
    renamed, dropped, fresh = fmt.mapping(state, model)
    own = model.state_dict()
    problems = []
    unused = sorted(set(state) - set(renamed) - set(dropped))
    if unused:
        problems.append(f"{len(unused)} source tensors unmapped ({', '.join(unused[:5])})")
    targets = [dst for dst, _ in renamed.values()]
    unknown = [k for k in targets if k not in own]
    if unknown:
        problems.append(f"{len(unknown)} mapped to keys the model lacks ({', '.join(unknown[:5])})")
    twice = sorted({k for k in targets if targets.count(k) > 1})
    if twice:
        problems.append(f"{len(twice)} model tensors mapped twice ({', '.join(twice[:5])})")
    missing = [k for k in own if k not in targets and k not in fresh]
    if missing:
        problems.append(f"{len(missing)} model tensors not filled ({', '.join(missing[:5])})")
    shapes = [f"{src} {list(arr.shape)} -> {dst} {list(own[dst].shape)}"
              for src, (dst, arr) in renamed.items()
              if dst in own and tuple(arr.shape) != tuple(own[dst].shape)]
    if shapes:
        problems.append(f"{len(shapes)} mis-shaped ({'; '.join(shapes[:3])})")
    if problems:
        raise CheckpointError(f"{source} ({fmt.name}) does not convert into {type(model).__name__}: "
                              + "; ".join(problems) + ".")
    new_state = {k: v.numpy() for k, v in own.items()}
    for dst, arr in renamed.values():
        new_state[dst] = np.asarray(arr, dtype=new_state[dst].dtype)
    return new_state, ConversionReport(fmt.name, len(renamed), sorted(dropped), sorted(fresh))


# Register the formats of every family.
from paddleseg_lpsnet.convert import fasterseg, lpsnet, pmsdsen  # noqa: E402,F401
