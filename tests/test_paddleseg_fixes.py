"""The fixes PaddleSeg 2.8.0 needs on Paddle 3.3.1: needed here, right, idempotent, undoable.

Every test starts and ends with upstream's own code in place (the fixes are global).
"""
import importlib
import os

import numpy as np
import paddle
import pytest

import tiny_dataset as td
from paddleseg_lpsnet.compat import paddleseg_fixes as fixes

RNG = np.random.RandomState(0)


@pytest.fixture(autouse=True)
def upstream_code():
    fixes.revert_paddleseg_fixes()
    yield
    fixes.revert_paddleseg_fixes()


def _logits_labels(n=2, c=4, h=6, w=7, ignore_frac=0.2):
    logits = RNG.normal(0, 2, (n, c, h, w)).astype("float32")
    labels = RNG.randint(0, c, (n, h, w)).astype("int64")
    labels[RNG.random_sample(labels.shape) < ignore_frac] = 255
    return logits, labels


def _log_softmax(logits):  # over axis 1
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _true_class(values, labels):
    """values[n, labels[n,h,w], h, w], with ignored pixels reading class 0."""
    safe = np.where(labels == 255, 0, labels)
    return np.take_along_axis(values, safe[:, None], axis=1)[:, 0]


def ref_cross_entropy(logits, labels, weight=None, top_k=1.0):
    valid = labels != 255
    w = np.ones(logits.shape[1], np.float32) if weight is None else np.asarray(weight, np.float32)
    wl = w[np.where(valid, labels, 0)]
    loss = -_true_class(_log_softmax(logits), labels) * wl * valid
    if top_k == 1.0:
        return loss.mean() / ((valid * wl).mean() + 1e-8)
    k = int(top_k * loss.size)
    order = np.argsort(-loss.reshape(-1), kind="stable")[:k]
    return loss.reshape(-1)[order].mean() / (wl.reshape(-1)[order].mean() + 1e-8)


def ref_ohem(logits, labels, thresh, min_kept):
    valid = labels != 255
    ce = -_true_class(_log_softmax(logits), labels)
    prob = np.exp(-ce) + (~valid)  # ignored pixels above 1
    kept = valid.copy()
    if 0 < valid.sum() and min_kept < valid.sum():
        kth = np.sort(prob.reshape(-1))[min(prob.size, min_kept) - 1]
        kept &= prob < max(thresh, kth)
    return (ce * kept).mean() / (kept.mean() + 1e-5)


def ref_areas(pred, label, num_classes, ignore=255):
    counted = label != ignore
    pred_area = np.array([((pred == i) & counted).sum() for i in range(num_classes)])
    label_area = np.array([(label == i).sum() for i in range(num_classes)])
    inter = np.array([((pred == i) & (label == i) & counted).sum() for i in range(num_classes)])
    return inter, pred_area, label_area


def _ce(**kwargs):
    from paddleseg.models.losses import CrossEntropyLoss
    return CrossEntropyLoss(**kwargs)


def _ohem(**kwargs):
    from paddleseg.models.losses import OhemCrossEntropyLoss
    return OhemCrossEntropyLoss(**kwargs)


def test_every_fix_is_needed_on_the_pinned_stack():
    assert fixes.needed_fixes() == [f.name for f in fixes.FIXES]


@pytest.mark.parametrize("kwargs", [{}, {"weight": [1.0, 2.0, 0.5, 3.0]}, {"top_k_percent_pixels": 0.3}])
def test_cross_entropy_fix(kwargs):
    logits, labels = _logits_labels()
    args = paddle.to_tensor(logits), paddle.to_tensor(labels)
    if "top_k_percent_pixels" not in kwargs:  # upstream's top-k branch never meets an int64 mask
        with pytest.raises(TypeError, match="promotion"):
            _ce(**kwargs)(*args)
    with fixes.paddleseg_fixes_applied():
        got = float(_ce(**kwargs)(*args))
    want = ref_cross_entropy(logits, labels, kwargs.get("weight"), kwargs.get("top_k_percent_pixels", 1.0))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_cross_entropy_fix_covers_the_distill_subclass():
    from paddleseg.models.losses import DistillCrossEntropyLoss
    logits, labels = _logits_labels()
    teacher = RNG.normal(0, 2, logits.shape).astype("float32")
    args = paddle.to_tensor(logits), paddle.to_tensor(teacher), paddle.to_tensor(labels)
    with pytest.raises(TypeError, match="promotion"):
        DistillCrossEntropyLoss()(*args)
    with fixes.paddleseg_fixes_applied():
        got = float(DistillCrossEntropyLoss()(*args))
    z = teacher.transpose(0, 2, 3, 1)
    soft = np.exp(z - z.max(-1, keepdims=True))
    soft /= soft.sum(-1, keepdims=True)
    ce = -(soft * _log_softmax(logits).transpose(0, 2, 3, 1)).sum(-1)
    valid = labels != 255
    np.testing.assert_allclose(got, (ce * valid).mean() / (valid.mean() + 1e-8), rtol=1e-5)


@pytest.mark.parametrize("thresh,min_kept", [(0.7, 10), (0.05, 10), (0.7, 0), (0.7, 10 ** 6)])
def test_ohem_fix(thresh, min_kept):
    logits, labels = _logits_labels()
    args = paddle.to_tensor(logits), paddle.to_tensor(labels)
    if min_kept < (labels != 255).sum():  # upstream fails only when it mines
        with pytest.raises(TypeError, match="promotion"):
            _ohem(thresh=thresh, min_kept=min_kept)(*args)
    with fixes.paddleseg_fixes_applied():
        loss = _ohem(thresh=thresh, min_kept=min_kept)
        got = float(loss(*args))
    np.testing.assert_allclose(got, ref_ohem(logits, labels, thresh, min_kept), rtol=1e-5)


def test_ohem_fix_backpropagates():
    logits, labels = _logits_labels()
    x = paddle.to_tensor(logits, stop_gradient=False)
    with fixes.paddleseg_fixes_applied():
        _ohem(min_kept=10)(x, paddle.to_tensor(labels)).backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_loss_list_fix_makes_the_training_log_work():
    upstream_train = importlib.import_module("paddleseg.core.train")
    logits, labels = _logits_labels()
    losses = {"types": [lambda logit, label: paddle.mean(logit ** 2)], "coef": [0.5]}
    args = ([paddle.to_tensor(logits)], paddle.to_tensor(labels), None, losses)
    with pytest.raises(IndexError):
        [loss.numpy() for loss in upstream_train.loss_computation(*args)][0][0]  # what train() logs
    with fixes.paddleseg_fixes_applied():
        logged = [loss.numpy() for loss in upstream_train.loss_computation(*args)][0][0]
    np.testing.assert_allclose(logged, 0.5 * np.mean(logits ** 2), rtol=1e-6)


@pytest.mark.parametrize("ignore", [255, 2])
def test_calculate_area_fix(ignore):
    from paddleseg.utils import metrics
    num_classes = 5
    pred = RNG.randint(0, num_classes, (2, 1, 9, 11))
    label = RNG.randint(0, num_classes, (2, 1, 9, 11))
    label[RNG.random_sample(label.shape) < 0.2] = 255
    label[0, 0, 0, :3] = 7  # out of range and not ignored: in no class
    args = paddle.to_tensor(pred.astype("int32")), paddle.to_tensor(label), num_classes
    with pytest.raises(ValueError, match="axis"):
        metrics.calculate_area(*args, ignore_index=ignore)
    with fixes.paddleseg_fixes_applied():
        got = metrics.calculate_area(*args, ignore_index=ignore)
    for g, w in zip(got, ref_areas(pred, label, num_classes, ignore)):
        assert g.dtype == paddle.int64 and g.shape == [num_classes]
        np.testing.assert_array_equal(g.numpy(), w)


def test_apply_is_idempotent_and_revert_restores_upstream():
    from paddleseg.models.losses import CrossEntropyLoss, OhemCrossEntropyLoss
    from paddleseg.utils import metrics
    upstream_train = importlib.import_module("paddleseg.core.train")

    def current():
        return (vars(CrossEntropyLoss)["_post_process_loss"], vars(OhemCrossEntropyLoss)["forward"],
                upstream_train.loss_computation, metrics.calculate_area)

    originals = current()
    assert fixes.apply_paddleseg_fixes() == [f.name for f in fixes.FIXES]
    patched = current()
    assert all(p is not o for p, o in zip(patched, originals))
    assert fixes.apply_paddleseg_fixes() == []
    assert current() == patched  # a second apply wraps nothing twice
    fixes.revert_paddleseg_fixes()
    assert current() == originals and fixes.applied_fixes() == []


def test_context_manager_leaves_fixes_applied_outside_it_in_place():
    fixes.apply_paddleseg_fixes()
    with fixes.paddleseg_fixes_applied() as applied_here:
        assert applied_here == []
    assert fixes.applied_fixes() == [f.name for f in fixes.FIXES]


def test_paddleseg_own_training_loop_runs_with_the_fixes(tmp_path):
    """PaddleSeg's core.train.train (training, its log, evaluation) fails as installed, runs fixed."""
    from paddleseg.cvlibs import Config, SegBuilder

    import paddleseg_lpsnet  # noqa: F401  (registers the tiny model)
    upstream_train = importlib.import_module("paddleseg.core.train")
    root = td.write_generic(tmp_path / "data", num_train=4, num_val=2)
    config = td.write_config(tmp_path / "c.yml", td.generic_config(root))

    def run(save_dir):
        builder = SegBuilder(Config(config))
        upstream_train.train(builder.model, builder.train_dataset, val_dataset=builder.val_dataset,
                             optimizer=builder.optimizer, losses=builder.loss, save_dir=str(save_dir),
                             iters=2, batch_size=2, save_interval=2, log_iters=1)

    with pytest.raises(TypeError, match="promotion"):
        run(tmp_path / "unfixed")
    with fixes.paddleseg_fixes_applied():
        run(tmp_path / "fixed")
    assert sorted(os.listdir(tmp_path / "fixed")) == ["best_model", "iter_2"]
