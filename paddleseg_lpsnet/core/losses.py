"""The training loss: the config's losses over the model's outputs, plus extra terms.

`LossComputer` follows PaddleSeg's rules for `loss: {types, coef}` (one loss and
coef per model output; BCELoss with edge_label reads the edge map; MixedLoss adds
each of its parts; KLLoss compares the first two outputs; a model with its own
`loss_computation` computes its list itself). Extra terms are callables added to
the total, e.g. knowledge distillation from a frozen teacher:

    class DistillTerm:
        name = "distill"
        def __call__(self, logits_list, batch):  # -> 0-D or 1-element loss tensor
            ...

    LossComputer(builder.loss, extra_terms=[DistillTerm(...)])
"""
from collections import OrderedDict
from typing import NamedTuple

import paddle

from paddleseg_lpsnet.errors import ConfigError

__all__ = ["LossComputer", "LossOutput"]


class LossOutput(NamedTuple):
    """total: the loss to backpropagate; parts: name -> weighted part (loss_0, ..., extra names)."""
    total: paddle.Tensor
    parts: "OrderedDict[str, paddle.Tensor]"


def _unwrap(model):
    return getattr(model, "_layers", model)  # paddle.DataParallel keeps the model in _layers


class LossComputer:
    """Computes the total loss of a training step.

    Args:
        losses (dict): {"types": [loss layers], "coef": [floats]} as SegBuilder.loss builds it.
        extra_terms (list, optional): Callables (logits_list, batch) -> loss, each with a
            `name`, added to the total. Default: ().
        config_path (str, optional): Named in errors. Default: None.
    """

    def __init__(self, losses, extra_terms=(), config_path=None):
        self.types = list(losses["types"])
        self.coefs = list(losses["coef"])
        self.extra_terms = list(extra_terms)
        self.config_path = config_path

    def add_term(self, term):
        """Add a callable (logits_list, batch) -> loss with a `name` to the total."""
        self.extra_terms.append(term)

    def __call__(self, model, logits_list, batch):
        parts = OrderedDict()
        for i, loss in enumerate(self._config_losses(model, logits_list, batch)):
            parts[f"loss_{i}"] = loss
        for i, term in enumerate(self.extra_terms):
            name = getattr(term, "name", None) or f"term_{i}"
            if name in parts:
                raise ValueError(f"Two loss terms are named {name!r}.")
            parts[name] = term(logits_list, batch)
        total = paddle.add_n([p.reshape([]) for p in parts.values()])
        return LossOutput(total, parts)

    def _config_losses(self, model, logits_list, batch):
        inner = _unwrap(model)
        if hasattr(inner, "loss_computation"):
            losses = {"types": self.types, "coef": self.coefs}
            return list(inner.loss_computation(logits_list, losses, batch))
        self._check_outputs(logits_list)
        labels = batch["label"].astype("int64")
        out = []
        for logits, loss, coef in zip(logits_list, self.types, self.coefs):
            kind = type(loss).__name__
            if kind == "BCELoss" and getattr(loss, "edge_label", False):
                out.append(coef * loss(logits, batch["edge"].astype("int64")))
            elif kind == "MixedLoss":
                out.extend(coef * part for part in loss(logits, labels))
            elif kind == "KLLoss":
                out.append(coef * loss(logits_list[0], logits_list[1].detach()))
            else:
                out.append(coef * loss(logits, labels))
        return out

    def _check_outputs(self, logits_list):
        if len(logits_list) != len(self.types):
            where = f" in {self.config_path}" if self.config_path else ""
            raise ConfigError(
                f"The model returns {len(logits_list)} outputs in training but `loss`{where} has "
                f"{len(self.types)} types and {len(self.coefs)} coef: give one loss (or one type "
                f"repeated) and one coef per output, e.g. coef: {[1] * len(logits_list)}.")
