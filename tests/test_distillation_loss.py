"""KLDistillationLoss against a numpy reference, its gradients, masking and the authors' form."""
import numpy as np
import paddle
import pytest

from paddleseg_lpsnet.models.losses import KLDistillationLoss


def _log_softmax(x, axis=1):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def _reference(student, teacher, temperature, weight, valid=None):
    """weight * T^2 * mean over (valid) pixels of KL(softmax(t/T) || softmax(s/T)), in float64."""
    log_s = _log_softmax(student.astype("float64") / temperature)
    log_t = _log_softmax(teacher.astype("float64") / temperature)
    kl = (np.exp(log_t) * (log_t - log_s)).sum(axis=1)  # [N, H, W]
    if valid is None:
        valid = np.ones_like(kl, dtype=bool)
    return weight * temperature ** 2 * kl[valid].sum() / max(valid.sum(), 1)


def _logits(seed, shape=(2, 5, 3, 4), scale=3.0):
    return (np.random.RandomState(seed).randn(*shape) * scale).astype("float32")


@pytest.mark.parametrize("temperature,weight", [(1.0, 1.0), (2.5, 0.3), (0.5, 4.0)])
def test_matches_numpy_reference(temperature, weight):
    s, t = _logits(1), _logits(2)
    loss = KLDistillationLoss(temperature=temperature, loss_weight=weight)
    out = float(loss(paddle.to_tensor(s), paddle.to_tensor(t)))
    assert out == pytest.approx(_reference(s, t, temperature, weight), rel=1e-5)
    assert out > 0


def test_zero_for_identical_logits_and_asymmetric():
    s, t = _logits(3), _logits(4)
    loss = KLDistillationLoss(temperature=2.0)
    assert float(loss(paddle.to_tensor(s), paddle.to_tensor(s))) == pytest.approx(0.0, abs=1e-6)
    forward = float(loss(paddle.to_tensor(s), paddle.to_tensor(t)))
    backward = float(loss(paddle.to_tensor(t), paddle.to_tensor(s)))
    assert forward == pytest.approx(_reference(s, t, 2.0, 1.0), rel=1e-5)
    assert abs(forward - backward) > 1e-3, "KL(teacher || student), not a symmetric divergence"


@pytest.mark.parametrize("label_shape", [(2, 3, 4), (2, 1, 3, 4)])
def test_label_masks_ignored_pixels(label_shape):
    s, t = _logits(5), _logits(6)
    label = np.random.RandomState(7).randint(0, 5, size=(2, 3, 4)).astype("int64")
    label[0, :2] = 255
    label[1, 2, 3] = 255
    loss = KLDistillationLoss(temperature=1.5, loss_weight=0.7, ignore_index=255)
    out = float(loss(paddle.to_tensor(s), paddle.to_tensor(t), paddle.to_tensor(label.reshape(label_shape))))
    assert out == pytest.approx(_reference(s, t, 1.5, 0.7, valid=label != 255), rel=1e-5)
    everything_ignored = paddle.full([2, 3, 4], 255, dtype="int64")
    assert float(loss(paddle.to_tensor(s), paddle.to_tensor(t), everything_ignored)) == 0.0


def test_gradient_reaches_the_student_only_and_is_analytic():
    s, t = _logits(8), _logits(9)
    temperature, weight = 2.0, 0.5
    student = paddle.to_tensor(s, stop_gradient=False)
    teacher = paddle.to_tensor(t, stop_gradient=False)
    KLDistillationLoss(temperature, weight)(student, teacher).backward()
    assert teacher.grad is None
    # d/ds [w T^2 mean KL] = w T (softmax(s/T) - softmax(t/T)) / pixels
    pixels = s.shape[0] * s.shape[2] * s.shape[3]
    expected = weight * temperature * (np.exp(_log_softmax(s / temperature))
                                       - np.exp(_log_softmax(t / temperature))) / pixels
    np.testing.assert_allclose(student.grad.numpy(), expected, rtol=1e-4, atol=1e-7)


@pytest.mark.filterwarnings("ignore:reduction")
def test_authors_form_is_weight_one_over_classes():
    """FasterSeg's nn.KLDivLoss()(log_softmax(student), softmax(teacher)) == this loss at T=1, weight 1/C."""
    torch = pytest.importorskip("torch", reason="torch (the optional extra) is not installed")
    s, t = _logits(10, shape=(2, 19, 4, 6)), _logits(11, shape=(2, 19, 4, 6))
    authors = torch.nn.KLDivLoss()(torch.log_softmax(torch.from_numpy(s), 1), torch.softmax(torch.from_numpy(t), 1))
    ours = KLDistillationLoss(temperature=1.0, loss_weight=1.0 / 19)(paddle.to_tensor(s), paddle.to_tensor(t))
    assert float(ours) == pytest.approx(float(authors), rel=1e-5)


@pytest.mark.parametrize("temperature", [0, -1.0])
def test_bad_temperature_is_named(temperature):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        KLDistillationLoss(temperature=temperature)


def test_shape_mismatch_is_named():
    loss = KLDistillationLoss()
    with pytest.raises(ValueError, match=r"\[1, 5, 4, 4\] and \[1, 7, 4, 4\]"):
        loss(paddle.randn([1, 5, 4, 4]), paddle.randn([1, 7, 4, 4]))
