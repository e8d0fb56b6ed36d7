"""Training checkpoints in PaddleSeg's layout, written so that a crash loses nothing.

    save_dir/iter_N/model.pdparams     model weights (PaddleSeg reads these)
    save_dir/iter_N/model.pdopt        optimizer state, LR scheduler position included
    save_dir/iter_N/ema_model.pdparams with --use_ema
    save_dir/iter_N/train_state.json   iteration, epoch, best mIoU so far, parameter names
    save_dir/iter_N/train_state.pkl    random generator states (and the AMP loss scaler)
    save_dir/best_model/model.pdparams (+ train_state.json), ema_best_model/ema_model.pdparams

A checkpoint directory is built under a hidden temporary name and renamed into place
once every file is written and synced, so `iter_N/` exists only when complete, and a
replaced `best_model/` is swapped in whole (utils/io.py). Older checkpoints are deleted
only after a newer one is complete, and never best_model/. A `kill -9` at any moment
leaves every completed checkpoint loadable; `recover()`, run when training starts,
deletes what an interrupted save left behind.
"""
import glob
import json
import os
import pickle
import random
import re
import shutil

import numpy as np
import paddle

from paddleseg_lpsnet.errors import CheckpointError
from paddleseg_lpsnet.utils.checkpoint import describe_unreadable, read_state_dict, strict_load
from paddleseg_lpsnet.utils.io import (atomic_paddle_save, atomic_write_bytes, atomic_write_json,
                                       publish_dir, recover_published, remove_dir, staging_dir)

__all__ = ["CheckpointManager", "TrainState", "rng_state", "set_rng_state", "iteration_of"]

STATE_JSON = "train_state.json"
STATE_PKL = "train_state.pkl"
MODEL = "model.pdparams"
OPTIMIZER = "model.pdopt"
EMA_MODEL = "ema_model.pdparams"
_ITER_DIR = re.compile(r"^iter_(\d+)$")


class TrainState(dict):
    """The scalars a resumed run needs: iteration, epoch, best mIoU and its iteration."""

    def __init__(self, iteration=0, best_miou=-1.0, best_iter=-1, best_ema_miou=-1.0,
                 best_ema_iter=-1, **extra):
        super().__init__(iteration=iteration, best_miou=best_miou, best_iter=best_iter,
                         best_ema_miou=best_ema_miou, best_ema_iter=best_ema_iter, **extra)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


def rng_state():
    """Python, NumPy and Paddle random generator states."""
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "paddle": paddle.get_rng_state()}


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    paddle.set_rng_state(state["paddle"])


def iteration_of(path):
    """N of a directory named iter_N, else None."""
    match = _ITER_DIR.match(os.path.basename(os.path.normpath(path)))
    return int(match.group(1)) if match else None


def _param_names(model):
    """{structured name: Paddle's unique tensor name}; optimizer states use the latter."""
    return {name: p.name for name, p in model.named_parameters()}


def _rename_optimizer_state(state, old_names, model, source):
    """Re-key an optimizer state saved for `old_names` to `model`'s tensor names.

    Paddle keys accumulators by its process-wide unique tensor names (conv2d_3.w_0_...),
    which differ when the model is built in another order or process state.
    """
    new_names = _param_names(model)
    mapping = {old_names[k]: new_names[k] for k in old_names if k in new_names}
    prefixes = sorted(mapping, key=len, reverse=True)
    renamed, foreign = {}, []
    for key, value in state.items():
        if not isinstance(value, (paddle.Tensor, np.ndarray)):
            renamed[key] = value  # LR_Scheduler and the like
            continue
        old = next((p for p in prefixes if key.startswith(p + "_")), None)
        if old is None:
            foreign.append(key)
            continue
        renamed[mapping[old] + key[len(old):]] = value
    if foreign:
        raise CheckpointError(f"Optimizer state {source} has {len(foreign)} entries for parameters "
                              f"this model does not have (e.g. {foreign[0]}); is it from another model?")
    return renamed


class CheckpointManager:
    """Saves, finds, loads and rotates the checkpoints of one save_dir.

    Args:
        save_dir (str): Output directory of the run.
        keep_checkpoint_max (int, optional): iter_N directories kept (best_model aside);
            0 or less keeps all. Default: 5.
    """

    def __init__(self, save_dir, keep_checkpoint_max=5):
        self.save_dir = save_dir
        self.keep_checkpoint_max = keep_checkpoint_max
        self.rotation = []  # checkpoint directories of this run, oldest first

    def recover(self):
        """Tidy save_dir after a crash (see utils.io.recover_published); returns what was done."""
        return recover_published(self.save_dir)

    # ------------------------------------------------------------------ finding
    def complete(self):
        """[(N, path)] of the complete iter_N checkpoints in save_dir, oldest first."""
        found = []
        for path in glob.glob(os.path.join(self.save_dir, "iter_*")):
            n = iteration_of(path)
            if n is not None and os.path.isfile(os.path.join(path, MODEL)) \
                    and os.path.isfile(os.path.join(path, OPTIMIZER)):
                found.append((n, path))
        return sorted(found)

    def latest(self):
        """The newest complete checkpoint directory, or None."""
        found = self.complete()
        return found[-1][1] if found else None

    # ------------------------------------------------------------------- saving
    def save(self, state, model, optimizer, ema_model=None, scaler=None):
        """Write save_dir/iter_<state.iteration>/ completely, then rotate old ones."""
        final = os.path.join(self.save_dir, f"iter_{state.iteration}")
        staging = staging_dir(final)
        try:
            atomic_paddle_save(model.state_dict(), os.path.join(staging, MODEL))
            atomic_paddle_save(optimizer.state_dict(), os.path.join(staging, OPTIMIZER))
            if ema_model is not None:
                atomic_paddle_save(ema_model.state_dict(), os.path.join(staging, EMA_MODEL))
            extra = {"rng": rng_state(), "scaler": scaler.state_dict() if scaler is not None else None}
            atomic_write_bytes(pickle.dumps(extra), os.path.join(staging, STATE_PKL))
            atomic_write_json(dict(state, param_names=_param_names(model)),
                              os.path.join(staging, STATE_JSON))
            publish_dir(staging, final)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            self._raise_write_error(final, exc)
            raise
        if final in self.rotation:
            self.rotation.remove(final)
        self.rotation.append(final)
        self._rotate()
        return final

    def save_best(self, state, model, name="best_model", filename=MODEL):
        """Replace save_dir/<name>/ (whole) with these weights and state."""
        final = os.path.join(self.save_dir, name)
        staging = staging_dir(final)
        try:
            atomic_paddle_save(model.state_dict(), os.path.join(staging, filename))
            atomic_write_json(dict(state), os.path.join(staging, STATE_JSON))
            publish_dir(staging, final)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            self._raise_write_error(final, exc)
            raise
        return final

    def _raise_write_error(self, final, exc):
        """An OSError while saving (disk full, permissions) as a CheckpointError; others pass."""
        if isinstance(exc, OSError):
            latest = self.latest()
            kept = f"the newest complete checkpoint is {latest}" if latest else "no earlier checkpoint exists"
            raise CheckpointError(f"Cannot write checkpoint {final}: {exc}. Nothing was replaced; "
                                  f"{kept}.") from exc

    def adopt(self, upto):
        """Count this save_dir's checkpoints up to iteration `upto` as this run's (a resume)."""
        self.rotation = [p for n, p in self.complete() if n <= upto]

    def _rotate(self):
        keep = self.keep_checkpoint_max
        while keep > 0 and len(self.rotation) > keep:
            remove_dir(self.rotation.pop(0))

    # ------------------------------------------------------------------ loading
    def load(self, path, model, optimizer, ema_model=None, scaler=None):
        """Load a checkpoint directory into the model and optimizer; return its TrainState.

        The model loads strictly; the optimizer state is re-keyed to this model's
        tensors. A PaddleSeg checkpoint (no train_state.json) resumes at the N of its
        iter_N name, with random states and best mIoU starting afresh.
        """
        if os.path.isfile(path):
            raise CheckpointError(f"Resume path {path} is a file; expected a checkpoint directory (holding "
                                  f"model.pdparams and model.pdopt) such as {os.path.dirname(path) or '.'}.")
        if not os.path.isdir(path):
            raise CheckpointError(f"Resume directory {path} does not exist; expected a checkpoint "
                                  f"directory such as {os.path.join(self.save_dir, 'iter_1000')}.")
        for name in (MODEL, OPTIMIZER):
            if not os.path.isfile(os.path.join(path, name)):
                raise CheckpointError(f"Resume directory {path} has no {name}; "
                                      "expected model.pdparams and model.pdopt (PaddleSeg's layout).")
        meta = self._read_meta(path)
        strict_load(model, read_state_dict(os.path.join(path, MODEL)), os.path.join(path, MODEL))
        opt_state = self._optimizer_state(path, meta, model)
        try:
            optimizer.set_state_dict(opt_state)
        except (AssertionError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(f"Optimizer state {os.path.join(path, OPTIMIZER)} does not fit this "
                                  f"optimizer ({type(optimizer).__name__}): {exc}") from exc
        if ema_model is not None:
            ema_path = os.path.join(path, EMA_MODEL)
            source = ema_path if os.path.isfile(ema_path) else os.path.join(path, MODEL)
            strict_load(ema_model, read_state_dict(source), source)
        extra = self._read_extra(path)
        if extra is not None:
            set_rng_state(extra["rng"])
            if scaler is not None and extra.get("scaler"):
                scaler.load_state_dict(extra["scaler"])
        meta.pop("param_names", None)
        return TrainState(**meta)

    def _read_meta(self, path):
        meta_path = os.path.join(path, STATE_JSON)
        if os.path.isfile(meta_path):
            try:
                with open(meta_path, encoding="utf-8") as f:
                    return json.load(f)
            except (OSError, ValueError) as exc:
                raise CheckpointError(f"Cannot read {meta_path}: {exc}.") from exc
        n = iteration_of(path)
        if n is None:
            raise CheckpointError(f"Cannot tell the iteration of {path}: it has no {STATE_JSON} "
                                  "and is not named iter_N.")
        return {"iteration": n}

    @staticmethod
    def _optimizer_state(path, meta, model):
        opt_path = os.path.join(path, OPTIMIZER)
        try:
            state = paddle.load(opt_path)
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"Cannot read optimizer state {opt_path}: {describe_unreadable(opt_path)}. "
                                  "Expected an optimizer state saved with paddle.save (model.pdopt).") from exc
        if not isinstance(state, dict):
            raise CheckpointError(f"{opt_path} holds {type(state).__name__}, not an optimizer state.")
        weights = [k for k in state if k in model.state_dict()]
        if weights:
            raise CheckpointError(f"{opt_path} holds model weights (keys such as {weights[0]!r}), not an "
                                  "optimizer state; expected the model.pdopt written beside model.pdparams.")
        old_names = meta.get("param_names") or _param_names(model)
        return _rename_optimizer_state(state, old_names, model, opt_path)

    @staticmethod
    def _read_extra(path):
        extra_path = os.path.join(path, STATE_PKL)
        if not os.path.isfile(extra_path):
            return None
        try:
            with open(extra_path, "rb") as f:
                return pickle.load(f)
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"Cannot read {extra_path}: {type(exc).__name__}: {exc}.") from exc
