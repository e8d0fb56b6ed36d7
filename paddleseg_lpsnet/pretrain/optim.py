"""PaddleClas's `Optimizer` section, built from Paddle's optimizers and LR schedulers.

Same meaning as PaddleClas's `build_optimizer` (which the paddleclas wheel does not
ship): the LR schedule is given in epochs and turned into iterations with the number
of steps per epoch (or stepped once per epoch with `by_epoch: True`); a warm-up of
`warmup_epoch` epochs from `warmup_start_lr` wraps the schedule in Paddle's
LinearWarmup; `regularizer: {name: L2, coeff}` becomes paddle.regularizer.L2Decay.
"""
import copy
import logging

import paddle
from paddle.optimizer import lr as lr_sched

from paddleseg_lpsnet.errors import ConfigError
from paddleseg_lpsnet.pretrain.config import check_known_keys

__all__ = ["build_lr_scheduler", "build_optimizer", "OPTIMIZERS", "LR_SCHEDULES"]

_WARMUP_KEYS = {"warmup_epoch", "warmup_start_lr", "by_epoch", "last_epoch"}
LR_SCHEDULES = {
    "Piecewise": {"decay_epochs", "values", "learning_rate"} | _WARMUP_KEYS,
    "Cosine": {"learning_rate", "eta_min"} | _WARMUP_KEYS,
    "ConstLR": {"learning_rate"} | _WARMUP_KEYS,
}
OPTIMIZERS = {
    "Momentum": {"momentum", "use_nesterov", "lr", "regularizer", "weight_decay", "clip_norm",
                 "multi_precision", "no_weight_decay_name", "one_dim_param_no_weight_decay"},
    "SGD": {"lr", "regularizer", "weight_decay", "clip_norm", "multi_precision"},
}


def _piecewise(cfg, epochs):
    """(boundaries in epochs, values); PaddleClas's every-30-epochs rule if learning_rate is set."""
    base = cfg.get("learning_rate")
    if base:
        # PaddleClas >= 2.6: a learning_rate replaces decay_epochs/values by x0.1 every 30 epochs.
        decay = list(range(30, epochs, 30))
        values = [base * 0.1 ** i for i in range(len(decay) + 1)]
        if not decay:
            decay, values = [epochs], [base, base]
        logging.getLogger("ppcls").warning(
            "Optimizer.lr (Piecewise) has learning_rate %s: as PaddleClas does, decay_epochs and "
            "values become %s and %s (x0.1 every 30 epochs).", base, decay, values)
        return decay, values
    decay, values = cfg.get("decay_epochs"), cfg.get("values")
    if not isinstance(decay, list) or not isinstance(values, list) or len(values) != len(decay) + 1:
        raise ConfigError(f"Optimizer.lr (Piecewise): values {values!r} must have one more entry "
                          f"than decay_epochs {decay!r}.")
    if any(b <= a for a, b in zip(decay, decay[1:])):
        raise ConfigError(f"Optimizer.lr (Piecewise): decay_epochs {decay!r} must increase.")
    return decay, values


def build_lr_scheduler(lr_cfg, epochs, steps_per_epoch):
    """A Paddle LRScheduler with a `by_epoch` attribute, as PaddleClas builds it."""
    if not isinstance(lr_cfg, dict) or lr_cfg.get("name") not in LR_SCHEDULES:
        name = lr_cfg.get("name") if isinstance(lr_cfg, dict) else lr_cfg
        raise ConfigError(f"Optimizer.lr.name {name!r}: paddleseg-lpsnet's trainer supports "
                          f"{', '.join(LR_SCHEDULES)}.")
    cfg = {k: v for k, v in lr_cfg.items() if k != "name"}
    name = lr_cfg["name"]
    check_known_keys(cfg, LR_SCHEDULES[name], f"Optimizer.lr ({name})")
    by_epoch = bool(cfg.get("by_epoch", False))
    unit = 1 if by_epoch else steps_per_epoch
    warmup_epoch = min(cfg.get("warmup_epoch", 0), epochs)
    warmup_steps = warmup_epoch if by_epoch else round(warmup_epoch * steps_per_epoch)
    if name == "Piecewise":
        decay, values = _piecewise(cfg, epochs)
        sched, base = lr_sched.PiecewiseDecay([e * unit for e in decay], values), values[0]
    elif name == "Cosine":
        base, t_max = cfg["learning_rate"], (epochs - warmup_epoch) * unit
        sched = (lr_sched.CosineAnnealingDecay(base, T_max=t_max, eta_min=cfg.get("eta_min", 0.0))
                 if t_max > 0 else base)
    else:
        sched = base = cfg["learning_rate"]
    if warmup_steps > 0:
        sched = lr_sched.LinearWarmup(sched, warmup_steps, cfg.get("warmup_start_lr", 0.0), base)
    elif not isinstance(sched, lr_sched.LRScheduler):
        sched = lr_sched.LambdaDecay(sched, lambda _: 1.0)
    sched.by_epoch = by_epoch
    return sched


def _regularizer(cfg):
    reg = cfg.get("regularizer")
    if reg is None:
        return cfg.get("weight_decay")
    reg = dict(reg)
    name = reg.pop("name", None)
    if name not in ("L1", "L2"):
        raise ConfigError(f"Optimizer.regularizer.name {name!r}: expected L1 or L2.")
    check_known_keys(reg, {"coeff"}, "Optimizer.regularizer")
    return getattr(paddle.regularizer, f"{name}Decay")(**reg)


def _param_groups(cfg, model, weight_decay):
    """All parameters, or PaddleClas's two groups when some are exempt from decay."""
    names = (cfg.get("no_weight_decay_name") or "").split()
    one_dim = cfg.get("one_dim_param_no_weight_decay", False)
    if not names and not one_dim:
        return model.parameters()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        exempt = any(n in name for n in names) or (one_dim and len(p.shape) == 1)
        (no_decay if exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(opt_cfg, epochs, steps_per_epoch, model):
    """(optimizer, lr_scheduler) for `model` from PaddleClas's Optimizer section."""
    cfg = copy.deepcopy(dict(opt_cfg))
    name = cfg.pop("name", None)
    if name not in OPTIMIZERS:
        raise ConfigError(f"Optimizer.name {name!r}: paddleseg-lpsnet's trainer supports "
                          f"{', '.join(OPTIMIZERS)}.")
    check_known_keys(cfg, OPTIMIZERS[name], "Optimizer")
    if "lr" not in cfg:
        raise ConfigError("Optimizer.lr must be set (e.g. name: Piecewise, decay_epochs, values).")
    sched = build_lr_scheduler(cfg["lr"], epochs, steps_per_epoch)
    weight_decay = _regularizer(cfg)
    clip = paddle.nn.ClipGradByNorm(cfg["clip_norm"]) if "clip_norm" in cfg else None
    common = dict(learning_rate=sched, parameters=_param_groups(cfg, model, weight_decay),
                  weight_decay=weight_decay, grad_clip=clip,
                  multi_precision=cfg.get("multi_precision", False))
    if name == "Momentum":
        opt = paddle.optimizer.Momentum(momentum=cfg.get("momentum", 0.9),
                                        use_nesterov=bool(cfg.get("use_nesterov", False)), **common)
    else:
        opt = paddle.optimizer.SGD(**common)
    return opt, sched
