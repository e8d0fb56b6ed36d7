"""Pretraining checkpoints in PaddleClas's layout, written atomically by rank 0.

`<output_dir>/<prefix>.pdparams` (model state), `.pdopt` (a list with the optimizer
state, LR scheduler included) and `.pdstates` ({"metric", "epoch"}), prefix being
best_model, latest or epoch_N; best_model also goes to best_model/model.pdparams.
That is what the paddleclas 2.6 Engine writes and reads (`Global.checkpoints`), so
either trainer resumes the other's checkpoints.

Additions PaddleClas ignores: .pdstates also keeps the best metric so far (PaddleClas
resets it on resume, so a worse epoch would replace best_model) and the structured
name of every parameter, so that the optimizer state (keyed by Paddle's generated
parameter names, which depend on what was built before in the process) maps back
onto the right parameters.
"""
import os

import paddle

from paddleseg_lpsnet.errors import CheckpointError
from paddleseg_lpsnet.utils.checkpoint import read_state_dict, strict_load
from paddleseg_lpsnet.utils.io import atomic_paddle_save

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_prefix"]


def checkpoint_prefix(path):
    """`path` without a .pdparams / .pdopt / .pdstates extension (PaddleClas gives prefixes)."""
    for ext in (".pdparams", ".pdopt", ".pdstates"):
        if path.endswith(ext):
            return path[: -len(ext)]
    return path


def _param_names(model):
    return {structured: p.name for structured, p in model.named_parameters()}


def save_checkpoint(model, optimizer, states, output_dir, prefix):
    """Write <output_dir>/<prefix>.{pdparams,pdopt,pdstates}; only rank 0 writes.

    Each file is replaced atomically, .pdstates last; a failed write (disk full)
    raises CheckpointError and leaves the earlier files of that name intact.
    """
    if paddle.distributed.get_rank() != 0:
        return
    base = os.path.join(output_dir, prefix)
    params = model.state_dict()
    writes = [(params, base + ".pdparams"), ([optimizer.state_dict()], base + ".pdopt")]
    if prefix == "best_model":
        writes.append((params, os.path.join(output_dir, "best_model", "model.pdparams")))
    writes.append((dict(states, param_names=_param_names(model)), base + ".pdstates"))
    for obj, path in writes:
        try:
            atomic_paddle_save(obj, path)
        except OSError as exc:
            raise CheckpointError(f"Cannot write checkpoint {path}: {exc}. The previous {prefix} "
                                  "files, if any, are unchanged.") from exc


def _rename_optimizer_state(opt_state, saved_names, model):
    """Re-key accumulators from the saved run's parameter names to this run's."""
    current = _param_names(model)
    old_to_new = {old: current[s] for s, old in saved_names.items() if s in current}
    renamed = {}
    for key, value in opt_state.items():
        if key == "master_weights" and isinstance(value, dict):
            value = {old_to_new.get(k, k): v for k, v in value.items()}
        else:
            old = max((o for o in old_to_new if key.startswith(o + "_")), key=len, default=None)
            if old is not None:
                key = old_to_new[old] + key[len(old):]
        renamed[key] = value
    return renamed


def _check_accumulators(opt_state, model, source):
    """Every parameter has an accumulator in a state that holds any (Momentum does)."""
    keys = [k for k in opt_state if k not in ("LR_Scheduler", "master_weights")]
    if not keys:
        return
    missing = [s for s, p in model.named_parameters() if not p.stop_gradient
               and not any(k.startswith(p.name + "_") for k in keys)]
    if missing:
        raise CheckpointError(
            f"Optimizer state {source} has no entry for {len(missing)} parameters "
            f"({', '.join(missing[:3])}): it was saved for another model or parameter naming.")


def _load(path, what):
    if not os.path.isfile(path):
        raise CheckpointError(f"Resuming needs {path} ({what}), which does not exist. "
                              "Global.checkpoints takes a prefix such as output/LPSNet_M/latest.")
    try:
        return paddle.load(path)
    except Exception as exc:
        raise CheckpointError(f"Cannot read {path}: {type(exc).__name__}: {exc}") from exc


def load_checkpoint(prefix, model, optimizer):
    """Restore model, optimizer and LR scheduler from a checkpoint prefix; returns its states."""
    prefix = checkpoint_prefix(prefix)
    strict_load(model, read_state_dict(prefix + ".pdparams"), prefix + ".pdparams")
    opt_state = _load(prefix + ".pdopt", "optimizer state")
    states = _load(prefix + ".pdstates", "epoch and metric")
    if isinstance(opt_state, list):
        opt_state = opt_state[0]
    if not isinstance(states, dict) or "epoch" not in states:
        raise CheckpointError(f"{prefix}.pdstates holds no epoch; expected {{'metric', 'epoch'}}.")
    if states.get("param_names"):
        opt_state = _rename_optimizer_state(opt_state, states["param_names"], model)
    _check_accumulators(opt_state, model, prefix + ".pdopt")
    optimizer.set_state_dict(opt_state)
    return states
