"""Knowledge distillation from a frozen teacher's logits (Hinton et al., arXiv 1503.02531).

FasterSeg (ICLR 2020) trains its student with KL(teacher || student) on the main
logits, as torch's `nn.KLDivLoss()` computes it: temperature 1 and a mean over every
element (pixels x classes), i.e. this loss with loss_weight = 1 / num_classes.
PaddleSeg's `KLLoss` computes the same divergence with the same argument order, but
averages over pixels x classes (1/C of this), lets gradients into the teacher's
logits and has no weight.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddleseg.cvlibs import manager

__all__ = ["KLDistillationLoss"]


@manager.LOSSES.add_component
class KLDistillationLoss(nn.Layer):
    """KL divergence from the teacher's to the student's temperature-softened class distribution.

    loss = loss_weight * T^2 * mean over pixels of sum_c p_t,c * (log p_t,c - log p_s,c),
    where p = softmax(logit / T) over the class axis. The T^2 factor keeps the size of
    the gradients independent of T. The teacher's logits never receive gradients.

    Args:
        temperature (float, optional): Softening temperature T > 0. Default: 1.0.
        loss_weight (float, optional): Factor on the loss. Default: 1.0.
        ignore_index (int, optional): With a label given, pixels labelled with it are
            left out of the mean. Default: 255.
    """

    def __init__(self, temperature=1.0, loss_weight=1.0, ignore_index=255):
        super().__init__()
        if not float(temperature) > 0:
            raise ValueError(f"KLDistillationLoss temperature must be > 0, got {temperature!r}.")
        self.temperature = float(temperature)
        self.loss_weight = float(loss_weight)
        self.ignore_index = ignore_index

    def forward(self, logit, teacher_logit, label=None):
        """Args: logit, teacher_logit: [N, C, H, W] (same shape); label (optional): [N, H, W] or [N, 1, H, W]."""
        if list(logit.shape) != list(teacher_logit.shape):
            raise ValueError(f"KLDistillationLoss needs student and teacher logits of one shape; got "
                             f"{list(logit.shape)} and {list(teacher_logit.shape)}.")
        log_p_s = F.log_softmax(logit / self.temperature, axis=1)
        log_p_t = F.log_softmax(teacher_logit.detach() / self.temperature, axis=1)
        kl = (paddle.exp(log_p_t) * (log_p_t - log_p_s)).sum(axis=1)  # [N, H, W]
        if label is None:
            loss = kl.mean()
        else:
            valid = (label.reshape(kl.shape) != self.ignore_index).astype(kl.dtype)
            loss = (kl * valid).sum() / paddle.clip(valid.sum(), min=1.0)
        return self.loss_weight * self.temperature ** 2 * loss
