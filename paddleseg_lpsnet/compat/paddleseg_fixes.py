"""Fixes PaddleSeg 2.8.0 needs on Paddle 3.x, in one place.

Paddle 3 no longer promotes integer tensors in arithmetic with float tensors and
reduces to 0-D tensors, which breaks these PaddleSeg 2.8.0 functions:

| fix | upstream function | failure on Paddle 3.3.1 |
|---|---|---|
| `cross_entropy_dtypes` | `CrossEntropyLoss._post_process_loss` (also `DistillCrossEntropyLoss`) | `mask * coef` and `one_hot(label * mask)`: TypeError, float32 with int64 |
| `ohem_dtypes` | `OhemCrossEntropyLoss.forward` | `prob + (1 - valid_mask)`: TypeError, float32 with int64 |
| `loss_list_0d` | `paddleseg.core.train.loss_computation` | the training log's `l[0]` on a 0-D loss: IndexError |
| `calculate_area_0d` | `paddleseg.utils.metrics.calculate_area` | `paddle.concat` of 0-D sums: ValueError |

Each fix carries a probe that runs the upstream function on tiny tensors and says
whether the installed Paddle/PaddleSeg pair shows the failure; a fix is applied only
then. The replacements compute what upstream meant (same values where upstream
worked), and are written fresh.

`import paddleseg_lpsnet` applies nothing. The `lpsnet` commands and the trainer and
evaluator in `paddleseg_lpsnet.core` call `apply_paddleseg_fixes()` (idempotent);
`revert_paddleseg_fixes()` restores the originals and `paddleseg_fixes_applied()` is a context
manager doing both. Scripts that drive PaddleSeg's own `paddleseg.core.train` can call
`apply_paddleseg_fixes()` first.
"""
import contextlib
from dataclasses import dataclass
from typing import Callable

__all__ = ["Fix", "FIXES", "apply_paddleseg_fixes", "revert_paddleseg_fixes",
           "paddleseg_fixes_applied", "applied_fixes", "needed_fixes"]


@dataclass(frozen=True)
class Fix:
    """One replacement of an upstream attribute.

    Args:
        name (str): Short identifier.
        target (Callable): Returns the object (module or class) that owns `attr`.
        attr (str): Attribute replaced on the owner.
        replacement (Callable): Returns the new attribute value (a function).
        probe (Callable): Returns True when the installed upstream attribute shows the bug.
        why (str): One line on what breaks.
    """
    name: str
    target: Callable
    attr: str
    replacement: Callable
    probe: Callable
    why: str


# --------------------------------------------------------------------------- losses

def _fixed_ce_post_process_loss(self, logit, label, semantic_weights, loss):
    """CrossEntropyLoss._post_process_loss with every operand in a float dtype.

    `logit` is channel-last here ([N, H, W, C]); `loss` is per pixel. Ignored pixels
    index class 0 in the weight lookup (upstream's `label * mask`), and have zero loss.
    """
    import paddle
    import paddle.nn.functional as F

    valid = label != self.ignore_index
    if self.avg_non_ignore:
        mask = valid.astype("float32")
    else:
        mask = paddle.ones(label.shape, dtype="float32")
    mask.stop_gradient = True
    label.stop_gradient = True
    if loss.ndim > mask.ndim:
        loss = paddle.squeeze(loss, axis=-1)
    loss = loss * mask.astype(loss.dtype)
    if semantic_weights is not None:
        loss = loss * semantic_weights
    if self.weight is not None:
        index = paddle.where(valid, label, paddle.zeros_like(label))
        coef = paddle.sum(F.one_hot(index, logit.shape[-1]) * self.weight, axis=-1)
    else:
        coef = paddle.ones(label.shape, dtype="float32")
    coef.stop_gradient = True
    if self.top_k_percent_pixels == 1.0:
        return paddle.mean(loss) / (paddle.mean(mask * coef) + self.EPS)
    loss = loss.reshape([-1])
    top_k = int(self.top_k_percent_pixels * loss.shape[0])
    loss, indices = paddle.topk(loss, top_k)
    coef = paddle.gather(coef.reshape([-1]), indices)
    return loss.mean() / (paddle.mean(coef) + self.EPS)


def _fixed_ohem_forward(self, logit, label):
    """OhemCrossEntropyLoss.forward with float masks where they meet probabilities.

    Keeps the pixels whose probability of the true class is below max(thresh, the
    min_kept-th smallest probability); averages the cross entropy over them.
    """
    import paddle
    import paddle.nn.functional as F

    if label.ndim != logit.ndim:
        label = paddle.unsqueeze(label, 1)
    n, c, h, w = logit.shape
    label = label.reshape([-1]).astype("int64")
    valid = (label != self.ignore_index).astype("int64")
    num_valid = int(valid.sum())
    label = label * valid
    if 0 < num_valid and self.min_kept < num_valid:
        prob = F.softmax(logit, axis=1).transpose([1, 0, 2, 3]).reshape([c, -1])
        prob = prob + (1 - valid).astype(prob.dtype)  # ignored pixels: > 1, never kept
        true_prob = paddle.sum(prob * F.one_hot(label, c).transpose([1, 0]).astype(prob.dtype), axis=0)
        threshold = self.thresh
        if self.min_kept > 0:
            order = true_prob.argsort()
            kth = int(order[min(order.shape[0], self.min_kept) - 1])
            if float(true_prob[kth]) > self.thresh:
                threshold = true_prob[kth]
            kept = (true_prob < threshold).astype("int64")
            label = label * kept
            valid = valid * kept
    label = label + (1 - valid) * self.ignore_index
    label = label.reshape([n, 1, h, w])
    valid_mask = valid.reshape([n, 1, h, w]).astype("float32")
    loss = F.cross_entropy(logit, label, ignore_index=self.ignore_index, reduction="none", axis=1)
    loss = loss * valid_mask.astype(loss.dtype)
    label.stop_gradient = True
    valid_mask.stop_gradient = True
    return paddle.mean(loss) / (paddle.mean(valid_mask) + self.EPS)


def _is_type_promotion_error(exc):
    return isinstance(exc, TypeError) and "promotion" in str(exc).lower()


def _probe_loss(make_loss, **kwargs):
    import paddle
    logit = paddle.to_tensor([[[[2.0, -1.0]], [[0.5, 1.0]]]])  # [1, 2, 1, 2]
    label = paddle.to_tensor([[[1, 0]]], dtype="int64")  # [1, 1, 2]
    try:
        make_loss(**kwargs)(logit, label)
    except Exception as exc:  # noqa: BLE001 (only the known symptom counts)
        return _is_type_promotion_error(exc)
    return False


def _probe_cross_entropy():
    from paddleseg.models.losses import CrossEntropyLoss
    return _probe_loss(CrossEntropyLoss) or _probe_loss(CrossEntropyLoss, weight=[1.0, 2.0])


def _probe_ohem():
    from paddleseg.models.losses import OhemCrossEntropyLoss
    return _probe_loss(OhemCrossEntropyLoss, min_kept=1)


# ------------------------------------------------------------------- training log

def _fixed_loss_computation(original):
    """Wraps paddleseg.core.train.loss_computation: every loss as a 1-element tensor."""
    def loss_computation(logits_list, labels, edges, losses):
        return [loss.reshape([1]) if loss.ndim == 0 else loss
                for loss in original(logits_list, labels, edges, losses)]
    loss_computation.__wrapped__ = original
    return loss_computation


def _probe_loss_list():
    import importlib

    import paddle
    upstream_train = importlib.import_module("paddleseg.core.train")  # the package exports a function of that name

    def mean_loss(logit, label):
        return paddle.mean(logit)

    logits = [paddle.ones([1, 2, 2, 2])]
    out = upstream_train.loss_computation(logits, None, None, {"types": [mean_loss], "coef": [1.0]})
    return out[0].numpy().ndim == 0  # the training log indexes it with [0]


# ------------------------------------------------------------------------ metrics

def _fixed_calculate_area(pred, label, num_classes, ignore_index=255):
    """Per-class intersection, prediction and label pixel counts, int64 [num_classes].

    Same definition as upstream: prediction and intersection count only pixels whose
    label is not ignore_index; the label area counts label == class.
    """
    import paddle

    if pred.ndim == 4:
        pred = paddle.squeeze(pred, axis=1)
    if label.ndim == 4:
        label = paddle.squeeze(label, axis=1)
    if pred.shape != label.shape:
        raise ValueError(f"Shape of `pred` and `label` should be equal, but they are "
                         f"{list(pred.shape)} and {list(label.shape)}.")
    pred = pred.astype("int64").reshape([-1])
    label = label.astype("int64").reshape([-1])
    counted = label != ignore_index

    def count(values):
        values = paddle.masked_select(values, (values >= 0) & (values < num_classes))
        return paddle.bincount(values, minlength=num_classes)

    pred_area = count(paddle.masked_select(pred, counted))
    label_area = count(label)
    intersect_area = count(paddle.masked_select(label, counted & (pred == label)))
    return intersect_area, pred_area, label_area


def _probe_calculate_area():
    import paddle
    from paddleseg.utils import metrics
    pred = paddle.to_tensor([[[[0, 1]]]], dtype="int32")
    try:
        metrics.calculate_area(pred, pred.astype("int64"), 2)
    except ValueError as exc:
        return "axis" in str(exc)
    return False


def _module(name):
    def get():
        import importlib
        return importlib.import_module(name)
    return get


def _losses_class(name):
    def get():
        from paddleseg.models import losses
        return getattr(losses, name)
    return get


FIXES = (
    Fix("cross_entropy_dtypes", _losses_class("CrossEntropyLoss"), "_post_process_loss",
        lambda original: _fixed_ce_post_process_loss, _probe_cross_entropy,
        "CrossEntropyLoss multiplies float32 masks with int64 coefficients and labels"),
    Fix("ohem_dtypes", _losses_class("OhemCrossEntropyLoss"), "forward",
        lambda original: _fixed_ohem_forward, _probe_ohem,
        "OhemCrossEntropyLoss adds an int64 mask to float32 probabilities"),
    Fix("loss_list_0d", _module("paddleseg.core.train"), "loss_computation",
        _fixed_loss_computation, _probe_loss_list,
        "paddleseg.core.train logs l[0] of each loss, which is 0-D on Paddle 3"),
    Fix("calculate_area_0d", _module("paddleseg.utils.metrics"), "calculate_area",
        lambda original: _fixed_calculate_area, _probe_calculate_area,
        "calculate_area concatenates 0-D per-class sums"),
)

# name -> (owner, original attribute) of the fixes in place
_APPLIED = {}


def needed_fixes():
    """Names of the fixes whose bug the installed versions show (probes unpatched code)."""
    return [fix.name for fix in FIXES if fix.name in _APPLIED or fix.probe()]


def applied_fixes():
    """Names of the fixes in place now."""
    return list(_APPLIED)


def apply_paddleseg_fixes():
    """Apply every fix whose bug the installed versions show; idempotent.

    Returns the names of the fixes applied by this call.
    """
    applied = []
    for fix in FIXES:
        if fix.name in _APPLIED or not fix.probe():
            continue
        owner = fix.target()
        original = getattr(owner, fix.attr)
        # keep the attribute as the owner holds it (a plain function on a class)
        original = vars(owner).get(fix.attr, original)
        setattr(owner, fix.attr, fix.replacement(original))
        _APPLIED[fix.name] = (owner, original)
        applied.append(fix.name)
    return applied


def revert_paddleseg_fixes(names=None):
    """Restore the upstream attributes of the given (default: all) applied fixes."""
    for name in list(_APPLIED if names is None else names):
        if name in _APPLIED:
            owner, original = _APPLIED.pop(name)
            setattr(owner, next(f.attr for f in FIXES if f.name == name), original)


@contextlib.contextmanager
def paddleseg_fixes_applied():
    """Apply the needed fixes for the duration of a block; undo those applied here."""
    applied = apply_paddleseg_fixes()
    try:
        yield applied
    finally:
        revert_paddleseg_fixes(applied)
