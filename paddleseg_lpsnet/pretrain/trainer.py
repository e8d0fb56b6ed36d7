"""paddleseg-lpsnet's ImageNet trainer: PaddleClas's train loop where PaddleClas's Engine is absent.

The paddleclas wheel ships no Engine, so this reads the same config with the same
meaning, from PaddleClas's own pieces where the wheel has them (config parser and
`-o` overrides, arch builder, transform operators, logger, AverageMeter) and Paddle's
otherwise (optimizer, LR schedulers, samplers, DataParallel). Per epoch it trains,
evaluates (`eval_during_train`, `eval_interval`, `start_eval_epoch`), keeps the best
top-1 as best_model and writes epoch_N (`save_interval`) and latest, resumes from
`Global.checkpoints`, logs VisualDL scalars (`use_visualdl`) and shows a progress
bar on a terminal. Under `python -m paddle.distributed.launch` each process trains
on its shard (DataParallel); rank 0 alone writes files.

Deviations from PaddleClas's Engine, all on the side of caution: the best metric
survives a resume (PaddleClas resets it, so a worse epoch would replace
best_model); before evaluation the BN statistics of rank 0 are broadcast, so the
reported accuracy is that of the saved weights; bad images raise instead of being
replaced by random others; unsupported keys raise (config.py).
"""
import copy
import difflib
import os
import random
import time

import numpy as np
import paddle
import paddle.distributed as dist
import paddle.nn.functional as F

from paddleseg_lpsnet.errors import ConfigError
from paddleseg_lpsnet.pretrain.archs import PPCLS_ARCHS, register_ppcls_archs
from paddleseg_lpsnet.pretrain.checkpoint import checkpoint_prefix, load_checkpoint, save_checkpoint
from paddleseg_lpsnet.pretrain.config import check_trainer_config
from paddleseg_lpsnet.pretrain.data import build_dataloader
from paddleseg_lpsnet.pretrain.optim import build_optimizer
from paddleseg_lpsnet.utils.checkpoint import load_backbone_pretrained

__all__ = ["PretrainTrainer", "build_classifier", "CombinedCELoss", "topk_correct"]


def build_classifier(config):
    """The model of `Arch` through PaddleClas's build_model (wheel), our archs registered."""
    from paddleclas.ppcls import arch as ppcls_arch
    register_ppcls_archs(ppcls_arch)
    name = config["Arch"]["name"]
    if not callable(getattr(ppcls_arch, str(name), None)):
        close = difflib.get_close_matches(str(name), list(PPCLS_ARCHS) + [
            n for n in dir(ppcls_arch) if n[:1].isupper()], n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"Arch.name {name!r} is not a PaddleClas architecture.{hint} "
                          f"LPS-Net: {', '.join(PPCLS_ARCHS)}.")
    try:
        return ppcls_arch.build_model(config)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Arch {name}: {exc}") from exc


class CombinedCELoss:
    """PaddleClas's CombinedLoss of CELoss entries: {"CELoss": ..., "loss": weighted sum}."""

    def __init__(self, entries):
        self.terms = []
        for entry in entries:
            params = next(iter(entry.values())) or {}
            eps = params.get("epsilon")
            self.terms.append((params.get("weight", 1.0), eps if eps and 0 < eps < 1 else 0.0))

    def __call__(self, logits, label):
        losses = [F.cross_entropy(logits, label, label_smoothing=eps) for _, eps in self.terms]
        total = sum(w * loss for (w, _), loss in zip(self.terms, losses))
        return {"CELoss": sum(losses), "loss": total}


def topk_correct(logits, label, ks):
    """How many samples have their label among the top k logits, for each k."""
    num_classes = logits.shape[-1]
    top = paddle.topk(logits, k=min(max(ks), num_classes), axis=-1)[1]
    hits = (top == label.reshape([-1, 1])).astype("float32")
    return [float(hits[:, :min(k, num_classes)].sum()) for k in ks]


def _topk_of(metric_entries):
    ks = []
    for entry in metric_entries or []:
        topk = entry["TopkAcc"].get("topk", [1, 5]) if entry["TopkAcc"] else [1, 5]
        ks.extend([topk] if isinstance(topk, int) else list(topk))
    return ks


def _best_so_far(states, checkpoint):
    """Best metric and epoch before a resume: from our .pdstates, or a PaddleClas run's best_model."""
    if "best_metric" in states:
        return {"metric": float(states["best_metric"]), "epoch": int(states.get("best_epoch", 0))}
    best_states = os.path.join(os.path.dirname(checkpoint_prefix(checkpoint)), "best_model.pdstates")
    if os.path.isfile(best_states):
        best = paddle.load(best_states)
        if int(best.get("epoch", 0)) <= int(states["epoch"]):
            return {"metric": float(best["metric"]), "epoch": int(best["epoch"])}
    return {"metric": -1.0, "epoch": 0}


class _Meters:
    """PaddleClas AverageMeters by name, weighted by batch size."""

    def __init__(self):
        from paddleclas.ppcls.utils.misc import AverageMeter
        self._cls, self.meters = AverageMeter, {}

    def update(self, values, n):
        for key, value in values.items():
            self.meters.setdefault(key, self._cls(key, "7.5f")).update(float(value), n)

    def text(self):
        return ", ".join(f"{k}: {m.avg:.5f}" for k, m in self.meters.items())


class PretrainTrainer:
    """Trains an ImageNet classifier from a PaddleClas config (see the module docstring).

    Args:
        config (dict): A PaddleClas config, as load_ppcls_config returns it.
    """

    def __init__(self, config):
        check_trainer_config(config)
        self.config = config
        glob = config["Global"]
        self.epochs, self.output_dir = glob["epochs"], glob["output_dir"]
        self._setup_process(glob)
        arch = config["Arch"]
        if "class_num" not in arch and "class_num" in glob:
            arch["class_num"] = glob["class_num"]  # PaddleClas's deprecated location
        self.model = build_classifier(config)
        self.class_num = arch.get("class_num")
        loaders = config["DataLoader"]
        self.train_loader = build_dataloader(loaders, "Train", self.class_num, self.rank, self.world)
        self.do_eval = bool(glob.get("eval_during_train", True))
        self.eval_loader = (build_dataloader(loaders, "Eval", self.class_num, self.rank, self.world)
                            if self.do_eval else None)
        self.steps_per_epoch = len(self.train_loader)
        if self.steps_per_epoch == 0:
            raise ConfigError("DataLoader.Train yields no batch (fewer images than batch_size with "
                              "drop_last: True?).")
        self.optimizer, self.lr = build_optimizer(config["Optimizer"], self.epochs,
                                                  self.steps_per_epoch, self.model)
        self.train_loss = CombinedCELoss(config["Loss"]["Train"])
        self.eval_loss = CombinedCELoss(config["Loss"].get("Eval") or config["Loss"]["Train"])
        metric = config.get("Metric") or {}
        self.train_topk, self.eval_topk = _topk_of(metric.get("Train")), _topk_of(metric.get("Eval")) or [1]
        if self.class_num and max(self.train_topk + self.eval_topk) > self.class_num:
            self.log.warning(f"Top-k metrics with k > Arch.class_num ({self.class_num}) are always 1.")
        self.net = paddle.DataParallel(self.model) if self.world > 1 else self.model
        self.vdl = self._visualdl(glob)
        self.start_epoch, self.best = 0, {"metric": -1.0, "epoch": 0}
        self.global_step = 0
        self._restore(glob)

    # -- setup -----------------------------------------------------------------------
    def _setup_process(self, glob):
        from paddleclas.ppcls.utils import logger
        from paddleclas.ppcls.utils.config import print_config
        device = str(glob["device"])
        if device.startswith("gpu") and not paddle.is_compiled_with_cuda():
            raise ConfigError(f"Global.device is {device!r} but this Paddle has no CUDA; "
                              "pass -o Global.device=cpu or install paddlepaddle-gpu.")
        paddle.set_device(device)
        self.world, self.rank = dist.get_world_size(), dist.get_rank()
        if self.world > 1:
            dist.init_parallel_env()
        seed = glob.get("seed")
        if seed is None and self.world > 1:
            seed = 42  # PaddleClas's default in distributed runs
        if seed is not None:
            for set_seed in (paddle.seed, np.random.seed, random.seed):
                set_seed(int(seed) + self.rank)
        self.log = logger
        logger.init_logger(log_file=os.path.join(self.output_dir, "train.log"),
                           log_ranks=glob.get("log_ranks", "0"))
        print_config(self.config)

    def _visualdl(self, glob):
        if not glob.get("use_visualdl", False) or self.rank != 0:
            return None
        from visualdl import LogWriter
        os.makedirs(self.output_dir, exist_ok=True)
        return LogWriter(logdir=self.output_dir)

    def _restore(self, glob):
        if glob.get("checkpoints"):
            states = load_checkpoint(glob["checkpoints"], self.model, self.optimizer)
            self.start_epoch = int(states["epoch"])
            self.best = _best_so_far(states, glob["checkpoints"])
            self.global_step = self.start_epoch * self.steps_per_epoch
            best = f"{self.best['metric']:.5f}" if self.best["metric"] >= 0 else "none"
            self.log.info(f"Resumed from {checkpoint_prefix(glob['checkpoints'])} at epoch "
                          f"{self.start_epoch} (lr {self.lr.get_lr():.6g}, best top1 so far {best})")
        elif glob.get("pretrained_model"):
            path = str(glob["pretrained_model"])
            load_backbone_pretrained(self.model, path if path.endswith(".pdparams") or os.path.isfile(path)
                                     else path + ".pdparams")

    def _scalar(self, tag, value, step):
        if self.vdl is not None:
            self.vdl.add_scalar(tag=tag, step=step, value=float(value))

    # -- train / eval ------------------------------------------------------------------
    def train_epoch(self, epoch):
        """One pass over the training shard; returns the epoch's average losses and accuracies."""
        from tqdm import tqdm
        self.net.train()
        sampler = self.train_loader.batch_sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch - 1)
        meters, lr_tag = _Meters(), f"lr({type(self.lr).__name__})"
        print_every = max(1, int(self.config["Global"].get("print_batch_step", 10)))
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch}/{self.epochs}", leave=False,
                   disable=True if self.rank != 0 else None)
        tic = time.time()
        for step, (img, label) in enumerate(self.train_loader):
            lr = self.lr.get_lr()
            logits = self.net(img)
            losses = self.train_loss(logits, label)
            losses["loss"].backward()
            self.optimizer.step()
            self.optimizer.clear_grad()
            if not self.lr.by_epoch:
                self.lr.step()
            self.global_step += 1
            n = img.shape[0]
            accs = {f"top{k}": c / n for k, c in zip(self.train_topk, topk_correct(logits, label, self.train_topk))}
            meters.update({**{k: float(v) for k, v in losses.items()}, **accs}, n)
            bar.update(1)
            bar.set_postfix(loss=f"{meters.meters['loss'].avg:.4f}", lr=f"{lr:.4g}")
            if step % print_every == 0:
                self.log.info(f"[Train][Epoch {epoch}/{self.epochs}][Iter: {step}/{self.steps_per_epoch}]"
                              f"lr: {lr:.8f}, {meters.text()}, batch_cost: {time.time() - tic:.5f}s")
                self._scalar(lr_tag, lr, self.global_step)
                for key, m in meters.meters.items():
                    self._scalar(f"train_{key}", m.avg, self.global_step)
            tic = time.time()
        bar.close()
        if self.lr.by_epoch:
            self.lr.step()
        self.log.info(f"[Train][Epoch {epoch}/{self.epochs}][Avg]{meters.text()}")
        return {k: m.avg for k, m in meters.meters.items()}

    def _sync_bn_statistics(self):
        """Give every rank rank 0's BN running statistics (the ones that get saved)."""
        if self.world > 1:
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)

    @paddle.no_grad()
    def evaluate(self):
        """Loss and top-k accuracy over the whole eval set (summed over the ranks)."""
        self._sync_bn_statistics()
        self.model.eval()
        ks = self.eval_topk
        sums = np.zeros(len(ks) + 2, dtype="float64")  # loss * n, correct@k..., n
        for img, label in self.eval_loader:
            logits = self.model(img)
            n = img.shape[0]
            sums += [float(self.eval_loss(logits, label)["loss"]) * n,
                     *topk_correct(logits, label, ks), n]
        if self.world > 1:
            total = paddle.to_tensor(sums)
            dist.all_reduce(total)
            sums = total.numpy()
        self.model.train()
        count = max(sums[-1], 1.0)
        return {"loss": sums[0] / count, **{f"top{k}": c / count for k, c in zip(ks, sums[1:-1])}}

    # -- the loop ------------------------------------------------------------------------
    def _states(self, epoch, metric):
        return {"metric": metric, "epoch": epoch, "best_metric": self.best["metric"],
                "best_epoch": self.best["epoch"]}

    def _eval_due(self, epoch):
        glob = self.config["Global"]
        return (self.do_eval and epoch % int(glob.get("eval_interval", 1)) == 0
                and epoch >= int(glob.get("start_eval_epoch", 0)))

    def train(self):
        """Train from the start (or resumed) epoch to Global.epochs; returns the best metric."""
        glob = self.config["Global"]
        save_interval = int(glob.get("save_interval", 1))
        if self.start_epoch >= self.epochs:
            self.log.warning(f"Checkpoint epoch {self.start_epoch} >= Global.epochs {self.epochs}: "
                             "nothing to train.")
        for epoch in range(self.start_epoch + 1, self.epochs + 1):
            self.train_epoch(epoch)
            acc = 0.0
            if self._eval_due(epoch):
                result = self.evaluate()
                acc = result[f"top{self.eval_topk[0]}"]
                is_best = acc >= self.best["metric"]
                if is_best:
                    self.best = {"metric": acc, "epoch": epoch}
                self.log.info(f"[Eval][Epoch {epoch}]" + ", ".join(f"{k}: {v:.5f}" for k, v in result.items())
                              + f" [best metric: {self.best['metric']:.5f} at epoch {self.best['epoch']}]")
                self._scalar("eval_acc", acc, epoch)
                for key, value in result.items():
                    self._scalar(f"eval_{key}", value, epoch)
                if is_best:
                    save_checkpoint(self.model, self.optimizer, self._states(epoch, acc),
                                    self.output_dir, "best_model")
            if save_interval > 0 and epoch % save_interval == 0:
                save_checkpoint(self.model, self.optimizer, self._states(epoch, acc),
                                self.output_dir, f"epoch_{epoch}")
            save_checkpoint(self.model, self.optimizer, self._states(epoch, acc), self.output_dir, "latest")
        if self.vdl is not None:
            self.vdl.close()
        return copy.deepcopy(self.best)
