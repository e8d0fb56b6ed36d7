"""Training: PaddleSeg's loop and checkpoint layout, resumable exactly, on today's Paddle.

`train()` is `lpsnet train`: it builds the config's model, datasets, optimizer, LR
schedule and losses with PaddleSeg's SegBuilder and runs a `Trainer`. The Trainer
can also be driven directly with any model (an upstream PaddleSeg one included).

What the loop does that PaddleSeg 2.8's does not:
- every checkpoint directory appears only when complete (core/checkpoints.py), and
  holds the iteration, epoch, best mIoU and random states, so `--resume_model`
  continues exactly (same samples, augmentations, LR and optimizer state);
  `--resume_model auto` picks the newest complete checkpoint in save_dir;
- a bad sample stops the run with an error naming its files, never a hang
  (core/data.py), and the checkpoints written so far stay; or, with
  `--skip_bad_samples`, it is replaced by the next good sample, with a warning;
- a NaN or Inf loss stops the run before the update, naming the iteration, the loss
  parts and the batch's files (`--nan_policy stop`, the default), or skips the
  batch with a warning (`--nan_policy skip`); weights that became NaN or Inf are
  never written to a checkpoint;
- the loss is a LossComputer (core/losses.py) to which terms can be added, e.g.
  distillation from a frozen teacher (a config's `distill` section, core/distill.py);
- with paddle.distributed every rank trains and evaluates, rank 0 alone writes; before
  each evaluation the ranks take rank 0's BN statistics, so that the model evaluated
  is the one saved (without SyncBN each rank's running statistics drift apart).
"""
import contextlib
import copy
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import paddle

from paddleseg_lpsnet.compat import paddleseg_fixes_applied
from paddleseg_lpsnet.core.amp import amp_context
from paddleseg_lpsnet.core.checkpoints import CheckpointManager, TrainState
from paddleseg_lpsnet.core.data import CheckedDataset, epoch_batches, iterate_batches, rank_indices
from paddleseg_lpsnet.core.losses import LossComputer
from paddleseg_lpsnet.core.train_log import TrainLog, to_display_image, to_display_label
from paddleseg_lpsnet.core.val import eval_options, evaluate, format_result
from paddleseg_lpsnet.errors import ConfigError, DataError, TrainingError

__all__ = ["TrainOptions", "TrainResult", "Trainer", "train", "set_seed", "NAN_POLICIES"]

NAN_POLICIES = ("stop", "skip")
# With --nan_policy skip, this many non-finite losses in a row still stop the run.
MAX_SKIPPED_IN_A_ROW = 10


@dataclass
class TrainOptions:
    """Options of a training run; the names and meanings of PaddleSeg's train.py flags.

    Args:
        save_dir (str): Checkpoints and VisualDL records. Default: "output".
        iters (int): Total iterations. Default: 10000.
        batch_size (int): Samples per card per iteration. Default: 2.
        save_interval (int): Checkpoint (and evaluate) every this many iterations. Default: 1000.
        log_iters (int): A log line every this many iterations. Default: 10.
        keep_checkpoint_max (int): iter_N directories kept; <= 0 keeps all. Default: 5.
        num_workers (int): DataLoader worker processes; 0 reads in the main thread. Default: 0.
        use_vdl (bool): Write VisualDL records. Default: False.
        use_ema (bool): Keep and evaluate an exponential moving average of the weights. Default: False.
        ema_decay (float): EMA decay. Default: 0.999.
        precision (str): "fp32" or "fp16" (AMP, GPU only). Default: "fp32".
        amp_level (str): "O1" or "O2". Default: "O1".
        resume_model (str, optional): A checkpoint directory, or "auto" for the newest
            complete one in save_dir. Default: None.
        seed (int, optional): Seeds weights, shuffling and augmentations. Default: None.
        eval_options (dict): evaluate() options (aug_eval, scales, flips, is_slide, ...).
        vdl_images (int): Val images shown in VisualDL at each evaluation. Default: 3.
        progress (bool, optional): Progress bar; None: when stderr is a terminal.
        sync_bn (bool, optional): Convert BN to SyncBN; None: on multi-card GPU runs.
        nan_policy (str): A NaN or Inf loss: "stop" raises TrainingError before the
            update; "skip" drops the batch (no update) with a warning, and stops after
            MAX_SKIPPED_IN_A_ROW such batches in a row. Default: "stop".
        skip_bad_samples (bool): Replace a training sample that fails to load by the next
            good one, and leave bad val samples out of the metrics, with a warning,
            instead of stopping with DataError. Default: False.
    """
    save_dir: str = "output"
    iters: int = 10000
    batch_size: int = 2
    save_interval: int = 1000
    log_iters: int = 10
    keep_checkpoint_max: int = 5
    num_workers: int = 0
    use_vdl: bool = False
    use_ema: bool = False
    ema_decay: float = 0.999
    precision: str = "fp32"
    amp_level: str = "O1"
    resume_model: Optional[str] = None
    seed: Optional[int] = None
    eval_options: dict = field(default_factory=dict)
    vdl_images: int = 3
    progress: Optional[bool] = None
    sync_bn: Optional[bool] = None
    nan_policy: str = "stop"
    skip_bad_samples: bool = False


@dataclass
class TrainResult:
    """Where a run ended: iteration, best mIoU (-1 without evaluation), last evaluation."""
    iteration: int
    best_miou: float
    best_iter: int
    last_eval: object = None
    save_dir: str = "output"


def set_seed(seed):
    """Seed Paddle, NumPy and Python's random (nothing for None)."""
    if seed is not None:
        paddle.seed(seed)
        np.random.seed(seed)
        random.seed(seed)


class _Meter:
    """Running sums of the loss parts and timings between two log lines."""

    def __init__(self):
        from paddleseg.utils import TimeAverager
        self.reader, self.batch = TimeAverager(), TimeAverager()
        self.reset()

    def reset(self):
        self.count, self.total, self.parts = 0, 0.0, {}
        self.reader.reset()
        self.batch.reset()

    def add(self, loss_output):
        self.count += 1
        self.total += float(loss_output.total)
        for name, value in loss_output.parts.items():
            self.parts[name] = self.parts.get(name, 0.0) + float(value)


class Trainer:
    """Runs training of a built model (see module doc).

    Args:
        model (nn.Layer): Returns a list of logits in training.
        optimizer (paddle.optimizer.Optimizer): Over the model's parameters, with its LR scheduler.
        losses (LossComputer | dict): The loss, or SegBuilder.loss's {"types", "coef"}.
        train_dataset (paddle.io.Dataset): A PaddleSeg dataset in train mode.
        options (TrainOptions, optional): Default: TrainOptions().
        val_dataset (paddle.io.Dataset, optional): Evaluated at every checkpoint. Default: None.
    """

    def __init__(self, model, optimizer, losses, train_dataset, options=None, val_dataset=None):
        self.options = options = options or TrainOptions()
        if options.nan_policy not in NAN_POLICIES:
            raise ConfigError(f"nan_policy {options.nan_policy!r} is not one of {', '.join(NAN_POLICIES)}.")
        self.model = model
        self.optimizer = optimizer
        self.loss = losses if isinstance(losses, LossComputer) else LossComputer(losses)
        self.train_dataset = _checked(train_dataset, "train_dataset", options.seed)
        self.val_dataset = None if val_dataset is None else _checked(val_dataset, "val_dataset", None)
        self.nranks = paddle.distributed.get_world_size()
        self.rank = paddle.distributed.get_rank()
        self.is_writer = self.rank == 0
        self.checkpoints = CheckpointManager(options.save_dir, options.keep_checkpoint_max)
        self.state = TrainState()
        self.forward_model = model
        self.ema_model = None
        self.scaler = None
        self.log = None
        self.last_eval = None
        self.batch_indices = []  # dataset indices of the batch being trained on
        self.skipped_in_a_row = 0
        self.warned_samples = set()
        if options.skip_bad_samples:
            self.train_dataset.bad_samples = "replace"

    # ---------------------------------------------------------------- set-up
    def _prepare(self):
        opts = self.options
        if self.is_writer:
            _check_save_dir(opts.save_dir)
            for action in self.checkpoints.recover():
                self._info(f"Checkpoints: {action}.")
        if self._use_sync_bn():
            self.model = paddle.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        if opts.use_ema:
            self.ema_model = copy.deepcopy(self.model)
            self.ema_model.eval()
            for p in self.ema_model.parameters():
                p.stop_gradient = True
        if opts.precision == "fp16":
            self.scaler = paddle.amp.GradScaler(init_loss_scaling=1024)
        resumed = self._resume()
        if self.ema_model is not None and not resumed:
            from paddleseg.utils import init_ema_params
            init_ema_params(self.ema_model, self.model)
        if opts.precision == "fp16" and opts.amp_level == "O2":
            self.model, self.optimizer = paddle.amp.decorate(models=self.model, optimizers=self.optimizer,
                                                             level="O2", save_dtype="float32")
        self.forward_model = self.model
        if self.nranks > 1:
            from paddle.distributed import parallel
            if not parallel.parallel_helper._is_parallel_ctx_initialized():
                paddle.distributed.init_parallel_env()
            self.forward_model = paddle.DataParallel(self.model)

    def _use_sync_bn(self):
        on_gpu = paddle.get_device().startswith("gpu")
        if self.options.sync_bn is None:
            return self.nranks > 1 and on_gpu
        if self.options.sync_bn and not on_gpu:
            if self.nranks > 1:
                raise ConfigError(
                    f"`sync_bn: true` asks for SyncBatchNorm, whose Paddle {paddle.__version__} kernel runs on "
                    f"GPUs only, but this run is on {paddle.get_device()} with {self.nranks} processes. Set "
                    "sync_bn: false (each process normalises with its own batch statistics) or train on GPUs.")
            self._info("sync_bn: one process, so batch norm is already synchronised; using plain BN.")
            return False
        return bool(self.options.sync_bn)

    def _resume(self):
        path = self.options.resume_model
        if path is None:
            return False
        if path == "auto":
            path = self.checkpoints.latest()
            if path is None:
                self._info(f"--resume_model auto: no checkpoint in {self.options.save_dir}; starting at iteration 0.")
                return False
        self.state = self.checkpoints.load(path, self.model, self.optimizer, self.ema_model, self.scaler)
        if os.path.abspath(os.path.dirname(os.path.normpath(path))) == os.path.abspath(self.options.save_dir):
            self.checkpoints.adopt(self.state.iteration)
        self._info(f"Resumed from {path} at iteration {self.state.iteration} "
                   f"(best mIoU so far {self.state.best_miou:.4f}).")
        return True

    def _info(self, message):
        if self.log is not None:
            self.log.info(message)
        else:
            from paddleseg.utils import logger
            logger.info(message)  # rank 0 only

    # ----------------------------------------------------------------- loop
    def run(self):
        """Train to options.iters; returns a TrainResult."""
        opts = self.options
        with paddleseg_fixes_applied():
            self._prepare()
            if opts.precision == "fp16" and not paddle.get_device().startswith("gpu"):
                self._info("--precision fp16: AMP runs on GPU only; this CPU run computes in fp32.")
            self.log = TrainLog(opts.save_dir, opts.iters, self.state.iteration, opts.use_vdl,
                                enabled=self.is_writer, progress=opts.progress)
            try:
                self._loop()
            except BaseException as exc:
                self._report_stop(exc)
                raise
            finally:
                self.log.close()
        return TrainResult(self.state.iteration, self.state.best_miou, self.state.best_iter,
                           self.last_eval, opts.save_dir)

    def _report_stop(self, exc):
        latest = self.checkpoints.latest() if self.is_writer else None
        kept = f"; the newest checkpoint is {latest}" if latest else "; no checkpoint was written"
        self.log.warning(f"Training stopped at iteration {self.state.iteration} by "
                         f"{type(exc).__name__}{kept}.")

    def _loop(self):
        opts = self.options
        sampler = paddle.io.DistributedBatchSampler(self.train_dataset, batch_size=opts.batch_size,
                                                    shuffle=True, drop_last=True)
        per_epoch = len(sampler)
        if per_epoch == 0:
            raise DataError(f"train_dataset has {len(self.train_dataset)} samples, fewer than one batch "
                            f"({opts.batch_size} per card x {self.nranks} cards); lower --batch_size.")
        self.model.train()
        meter = _Meter()
        while self.state.iteration < opts.iters:
            epoch, skip = divmod(self.state.iteration, per_epoch)
            self.train_dataset.epoch = epoch
            index_batches = epoch_batches(sampler, epoch, opts.seed)[skip:]
            batches = iterate_batches(self.train_dataset, index_batches, opts.num_workers,
                                      on_skip=self._warn_skipped_sample)
            with contextlib.closing(batches):
                self._run_epoch(zip(index_batches, batches), epoch, meter)

    def _run_epoch(self, batches, epoch, meter):
        opts = self.options
        tic = time.time()
        for self.batch_indices, batch in batches:
            meter.reader.record(time.time() - tic)
            lr = self.optimizer.get_lr()
            out = self.train_step(batch)
            self.state.iteration += 1
            self.state.epoch = epoch
            it = self.state.iteration
            meter.batch.record(time.time() - tic, num_samples=opts.batch_size)
            if out is not None:
                meter.add(out)
            self.log.advance(None if out is None else float(out.total))
            if it % opts.log_iters == 0:
                self._log_train(meter, lr, epoch)
            if self.ema_model is not None:
                from paddleseg.utils import update_ema_model
                update_ema_model(self.ema_model, self.model, step=it, decay=opts.ema_decay)
            if it % opts.save_interval == 0 or it == opts.iters:
                self.checkpoint()
            if it >= opts.iters:
                return
            tic = time.time()

    def train_step(self, batch):
        """Forward, loss, backward, optimizer and LR step on one batch; returns the LossOutput,
        or None when a non-finite loss was skipped (--nan_policy skip: no update)."""
        images = batch["img"]
        if getattr(self.model, "data_format", "NCHW") == "NHWC":
            images = images.transpose([0, 2, 3, 1])
        # the forward pass updates BN statistics: a skipped batch must not leave its own
        buffers = self._running_statistics() if self.options.nan_policy == "skip" else []
        with amp_context(self.options.precision, self.options.amp_level):
            logits = self.forward_model(images)
            out = self.loss(self.model, logits, batch)
        if not self._loss_is_finite(out):
            self._skip_non_finite_loss(out)  # raises unless --nan_policy skip
            for buffer, saved in buffers:
                buffer.set_value(saved)
            self.optimizer.clear_grad()
            self._step_lr(None)
            return None
        self.skipped_in_a_row = 0
        if self.scaler is not None:
            scaled = self.scaler.scale(out.total)
            scaled.backward()
            self.scaler.minimize(self.optimizer, scaled)
        else:
            out.total.backward()
            self.optimizer.step()
        self.optimizer.clear_grad()
        self._step_lr(out.total)
        return out

    def _step_lr(self, loss):
        scheduler = self.optimizer._learning_rate
        if isinstance(scheduler, paddle.optimizer.lr.ReduceOnPlateau):
            if loss is not None:
                scheduler.step(loss)
        elif isinstance(scheduler, paddle.optimizer.lr.LRScheduler):
            scheduler.step()

    # ------------------------------------------------------------ faults
    def _loss_is_finite(self, out):
        """Whether the loss is finite on every rank (ranks must agree to skip or stop together)."""
        finite = math.isfinite(float(out.total))
        if self.nranks > 1:
            flag = paddle.to_tensor([0 if finite else 1], dtype="int32")
            paddle.distributed.all_reduce(flag)
            return int(flag.item()) == 0
        return finite

    def _statistics(self):
        """What the forward pass changes and the optimizer does not: buffers and frozen
        parameters (BN statistics are parameters with stop_gradient in Paddle 3)."""
        return [*(p for p in self.model.parameters() if p.stop_gradient), *self.model.buffers()]

    def _running_statistics(self):
        return [(t, t.clone()) for t in self._statistics()]

    def _share_statistics(self):
        """Give every rank rank 0's statistics: all evaluate the model that rank 0 saves."""
        if self.nranks > 1:
            for tensor in self._statistics():
                paddle.distributed.broadcast(tensor, src=0)

    def _skip_non_finite_loss(self, out):
        it, opts = self.state.iteration + 1, self.options
        self.skipped_in_a_row += 1
        total = float(out.total)
        if math.isfinite(total):
            what = "The loss of another rank is not finite"
        else:
            parts = ", ".join(f"{name} = {float(value):.4g}" for name, value in out.parts.items())
            what = f"The loss is {total:.4g} ({parts})"
        batch = self._describe_batch()
        if opts.nan_policy == "stop":
            raise TrainingError(
                f"{what} at iteration {it}/{opts.iters}; batch: {batch}. Training stopped before "
                f"the update, so no checkpoint holds weights from this step; {self._newest_checkpoint()}. "
                "Lower the learning rate or check these samples, then resume; "
                "`--nan_policy skip` skips such batches instead.")
        if self.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
            raise TrainingError(
                f"{what} at iteration {it}/{opts.iters}, the {self.skipped_in_a_row}th non-finite loss in "
                f"a row (--nan_policy skip gives up after {MAX_SKIPPED_IN_A_ROW}): training has "
                f"diverged; {self._newest_checkpoint()}. Lower the learning rate and resume from it.")
        self.log.warning(f"{what} at iteration {it}/{opts.iters}; batch: {batch}. Skipped this batch "
                         "(no update) as --nan_policy skip asks.")

    def _describe_batch(self, shown=4):
        names = [self.train_dataset.where(i) for i in self.batch_indices[:shown]]
        more = len(self.batch_indices) - shown
        return "; ".join(names) + (f"; and {more} more" if more > 0 else "")

    def _newest_checkpoint(self):
        latest = self.checkpoints.latest()
        return f"the newest checkpoint is {latest}" if latest else "no checkpoint was written yet"

    def _check_weights_finite(self):
        """TrainingError if a parameter or buffer holds NaN or Inf: such weights are never checkpointed."""
        for name, tensor in [*self.model.named_parameters(), *self.model.named_buffers()]:
            if tensor.dtype in (paddle.float16, paddle.bfloat16, paddle.float32, paddle.float64) \
                    and not bool(paddle.isfinite(tensor).all()):
                raise TrainingError(
                    f"Tensor {name} holds NaN or Inf at iteration {self.state.iteration} although "
                    f"the losses were finite (an exploding gradient); no checkpoint was written from "
                    f"these weights; {self._newest_checkpoint()}. Lower the learning rate (or clip "
                    "gradients: optimizer.grad_clip_cfg) and resume from it.")

    def _warn_skipped_sample(self, message):
        """A training or val sample skipped under --skip_bad_samples: warn once per sample, any rank."""
        if message in self.warned_samples:
            return
        self.warned_samples.add(message)
        text = f"Skipped a bad sample (--skip_bad_samples): {message}"
        if self.is_writer:
            self.log.warning(text)
        else:
            import sys
            print(f"[rank {self.rank}] WARNING {text}", file=sys.stderr, flush=True)

    def _log_train(self, meter, lr, epoch):
        from paddleseg.utils import calculate_eta
        opts, it = self.options, self.state.iteration
        loss = meter.total / max(meter.count, 1)
        batch_cost, reader_cost = meter.batch.get_average(), meter.reader.get_average()
        eta = calculate_eta(opts.iters - it, batch_cost)
        self.log.info(f"[TRAIN] epoch: {epoch + 1}, iter: {it}/{opts.iters}, loss: {loss:.4f}, lr: {lr:.6f}, "
                      f"batch_cost: {batch_cost:.4f}, reader_cost: {reader_cost:.5f}, "
                      f"ips: {meter.batch.get_ips_average():.4f} samples/sec | ETA {eta}")
        self.log.scalar("Train/loss", loss, it)
        if len(meter.parts) > 1:
            for name, value in meter.parts.items():
                self.log.scalar(f"Train/{name}", value / max(meter.count, 1), it)
        self.log.scalar("Train/lr", lr, it)
        self.log.scalar("Train/batch_cost", batch_cost, it)
        self.log.scalar("Train/reader_cost", reader_cost, it)
        meter.reset()

    # --------------------------------------------------------- checkpoints
    def checkpoint(self):
        """Evaluate (with a val set), then write iter_N/ and, on a new best mIoU, best_model/."""
        self._check_weights_finite()
        self._share_statistics()
        result, ema_result = self._evaluate()
        state, it = self.state, self.state.iteration
        best = result is not None and result.miou > state.best_miou
        if best:
            state.best_miou, state.best_iter = result.miou, it
        ema_best = ema_result is not None and ema_result.miou > state.best_ema_miou
        if ema_best:
            state.best_ema_miou, state.best_ema_iter = ema_result.miou, it
        if not self.is_writer:
            return
        if best:
            self.checkpoints.save_best(state, self.model)
        if ema_best:
            self.checkpoints.save_best(state, self.ema_model, "ema_best_model", "ema_model.pdparams")
        path = self.checkpoints.save(state, self.model, self.optimizer, self.ema_model, self.scaler)
        self.log.info(f"[TRAIN] Saved {path}")
        if result is not None:
            self._log_eval(result, ema_result)

    def _evaluate(self):
        if self.val_dataset is None:
            return None, None
        opts = self.options
        keep = rank_indices(len(self.val_dataset), 0, self.nranks)[:opts.vdl_images] if opts.use_vdl else ()
        common = dict(num_workers=1 if opts.num_workers > 0 else 0, precision=opts.precision,
                      amp_level=opts.amp_level, progress=opts.progress,
                      skip_bad_samples=opts.skip_bad_samples, on_skip=self._warn_skipped_sample,
                      **opts.eval_options)
        self.last_eval = evaluate(self.model, self.val_dataset, keep=keep, **common)
        ema_result = evaluate(self.ema_model, self.val_dataset, **common) if self.ema_model is not None else None
        self.model.train()
        return self.last_eval, ema_result

    def _log_eval(self, result, ema_result):
        from paddleseg_lpsnet.core.val import class_names
        from paddleseg_lpsnet.utils.visualize import get_palette
        it, state = self.state.iteration, self.state
        for line in format_result(result, class_names(len(result.class_iou))):
            self.log.info(line)
        self.log.info(f"[EVAL] The model with the best validation mIoU ({state.best_miou:.4f}) "
                      f"was saved at iter {state.best_iter}.")
        self.log.scalar("Evaluate/mIoU", result.miou, it)
        self.log.scalar("Evaluate/Acc", result.acc, it)
        if ema_result is not None:
            self.log.info(f"[EVAL] EMA mIoU: {ema_result.miou:.4f} Acc: {ema_result.acc:.4f}; best "
                          f"{state.best_ema_miou:.4f} at iter {state.best_ema_iter}.")
            self.log.scalar("Evaluate/Ema_mIoU", ema_result.miou, it)
            self.log.scalar("Evaluate/Ema_Acc", ema_result.acc, it)
        palette = get_palette(len(result.class_iou))
        for k, index in enumerate(sorted(result.samples)):
            sample = result.samples[index]
            self.log.image(f"Evaluate/sample_{k}_image", to_display_image(sample["image"]), it)
            self.log.image(f"Evaluate/sample_{k}_label", to_display_label(sample["label"], palette), it)
            self.log.image(f"Evaluate/sample_{k}_prediction",
                           to_display_label(sample["prediction"], palette), it)


def _check_save_dir(save_dir):
    """Fail before training, not at the first checkpoint, when save_dir cannot hold checkpoints."""
    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        raise ConfigError(f"--save_dir {save_dir} is a file; checkpoints need a directory.")
    try:
        os.makedirs(save_dir, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--save_dir {save_dir} cannot be created: {exc}.") from exc
    if not os.access(save_dir, os.W_OK):
        raise ConfigError(f"--save_dir {save_dir} is not writable.")


def _checked(dataset, name, seed):
    if isinstance(dataset, CheckedDataset):
        if seed is not None:
            dataset.seed = seed
        return dataset
    return CheckedDataset(dataset, name, seed=seed)


def _build(what, key, config_path):
    """Run a SegBuilder property; its failures become ConfigError naming `key` and the file."""
    from paddleseg_lpsnet.core.builder import build_error
    try:
        return what()
    except (RuntimeError, AssertionError, TypeError, ValueError, KeyError) as exc:
        raise build_error(exc, key, config_path) from exc


def train(config, save_dir="output", iters=None, batch_size=None, learning_rate=None, do_eval=False,
          use_vdl=False, save_interval=1000, log_iters=10, keep_checkpoint_max=5, seed=None,
          resume_model=None, num_workers=0, device="gpu", precision="fp32", amp_level="O1",
          use_ema=False, opts=None, progress=None, extra_loss_terms=(), nan_policy="stop",
          skip_bad_samples=False):
    """`lpsnet train`: train the model of config file `config` (PaddleSeg's flags as arguments).

    `extra_loss_terms` are added to the config's losses (see core/losses.py), and so is
    distillation from a frozen teacher when the config has a `distill` section (core/distill.py).
    Returns a TrainResult.
    """
    from paddleseg.cvlibs import SegBuilder

    from paddleseg_lpsnet.datasets.check import require_valid_data
    from paddleseg_lpsnet.core.builder import (build_model_checked, build_train_dataset, build_val_dataset,
                                               load_checked_config, set_device)
    from paddleseg_lpsnet.core.distill import build_distill_term
    with paddleseg_fixes_applied():
        set_device(device)
        set_seed(seed)
        cfg = load_checked_config(config, opts=opts, learning_rate=learning_rate,
                                  batch_size=batch_size, iters=iters)
        # the cheap part of `lpsnet data check` (paths, lists): fail before any work
        require_valid_data(cfg, config, splits=("train", "val") if do_eval else ("train",))
        train_dataset = build_train_dataset(cfg, config, seed=seed)
        val_dataset = build_val_dataset(cfg, config) if do_eval else None
        builder = SegBuilder(cfg)
        model = build_model_checked(builder, config)
        optimizer = _build(lambda: builder.optimizer, "optimizer / lr_scheduler", config)
        losses = LossComputer(_build(lambda: builder.loss, "loss", config), extra_loss_terms, config)
        distill = build_distill_term(cfg, config, model)  # None without a `distill` section
        if distill is not None:
            losses.add_term(distill)
        options = TrainOptions(
            save_dir=save_dir, iters=cfg.iters, batch_size=cfg.batch_size, save_interval=save_interval,
            log_iters=log_iters, keep_checkpoint_max=keep_checkpoint_max, num_workers=num_workers,
            use_vdl=use_vdl, use_ema=use_ema, precision=precision, amp_level=amp_level,
            resume_model=resume_model, seed=seed, eval_options=eval_options(cfg.test_config),
            progress=progress, sync_bn=cfg.dic.get("sync_bn"), nan_policy=nan_policy,
            skip_bad_samples=skip_bad_samples)
        return Trainer(model, optimizer, losses, train_dataset, options, val_dataset).run()
