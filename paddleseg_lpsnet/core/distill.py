"""Knowledge distillation in `lpsnet train`: a frozen teacher's logits as one more loss term.

A config with a `distill` section trains its model (the student) with the config's
`loss` plus a distillation loss between the student's logits and a trained
teacher's, on the same batch:

    distill:
      teacher:
        config: configs/fasterseg/fasterseg_teacher.yml   # builds the teacher
        checkpoint: output/fasterseg_teacher/best_model   # its trained weights
      loss:                          # spelled like PaddleSeg's `loss`
        types:
          - type: KLDistillationLoss
            temperature: 1.0
        coef: [0.05263157894736842]

- `teacher.config` is any config of the zoo (or of PaddleSeg) whose model has the
  student's classes; its `pretrained` keys are ignored. `teacher.checkpoint` (a
  .pdparams file, or a directory holding model.pdparams, e.g. save_dir/best_model)
  must fill every tensor of that model. Both paths are relative to the working
  directory, like dataset_root.
- `loss.coef[i]` weighs `loss.types[i]` between the student's i-th training output
  and the teacher's main logits (resized to the student's output where the sizes
  differ). As in PaddleSeg, one type serves every coef; outputs beyond `coef` are not
  distilled, so `coef: [w]` distils the main output only. A type is any registered
  loss called as `loss(student_logits, teacher_logits)` (KLDistillationLoss,
  PaddleSeg's KLLoss).
- The teacher is frozen (stop_gradient on every parameter), stays in eval mode for
  the whole run (its BN statistics never move) and runs under no_grad. It is not
  part of the student: checkpoints, EMA and the optimizer hold the student alone,
  so `--resume_model` rebuilds the teacher from the same section.
- The term is logged as Train/distill beside the config's loss_0, loss_1, ...

PaddleSeg 2.8 has a top-level `distill_loss` (types and coef) read only by its slim
distillation script, which takes the teacher on the command line. `lpsnet train`
reads `distill` instead and refuses `distill_loss` rather than ignore it.
"""
import difflib
from dataclasses import dataclass

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddleseg_lpsnet.errors import ConfigError, LPSNetError
from paddleseg_lpsnet.utils.checkpoint import read_state_dict, strict_load
from paddleseg_lpsnet.utils.config import _check_types, build_model, load_config

__all__ = ["DistillSpec", "read_distill_section", "FrozenTeacher", "DistillTerm", "build_teacher",
           "build_distill_term"]

SECTION = "distill"
# section path -> the keys it takes, all required
_KEYS = {
    "distill": ("teacher", "loss"),
    "distill.teacher": ("config", "checkpoint"),
    "distill.loss": ("types", "coef"),
}


@dataclass(frozen=True)
class DistillSpec:
    """A checked `distill` section.

    Args:
        teacher_config (str): The teacher's config file.
        teacher_checkpoint (str): The teacher's trained weights (file or directory).
        loss_types (tuple[dict]): Loss component configs, one per coef.
        coef (tuple[float]): Weight of each loss, for the student's outputs in order.
        source (str): The student's config file, named in errors.
    """
    teacher_config: str
    teacher_checkpoint: str
    loss_types: tuple
    coef: tuple
    source: str = "the config"


# -- the config section ----------------------------------------------------------------
def _section(value, path, source):
    """`value` as the dict at `path`, or ConfigError naming an unknown or missing key."""
    allowed = _KEYS[path]
    if not isinstance(value, dict):
        raise ConfigError(f"`{path}` in {source} must be a mapping with keys {', '.join(allowed)}; "
                          f"got {type(value).__name__} {value!r}.")
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f" Did you mean `{path}.{close[0]}`?" if close else ""
            raise ConfigError(f"Unknown key `{path}.{key}` in {source}: `{path}` takes "
                              f"{', '.join(allowed)}.{hint}")
    missing = [key for key in allowed if value.get(key) is None]
    if missing:
        raise ConfigError(f"`{path}` in {source} has no `{missing[0]}`: it needs {', '.join(allowed)}.")
    return value


def _path(value, key, source):
    if not isinstance(value, str) or not value:
        raise ConfigError(f"`{key}` in {source} must be a path; got {value!r}.")
    return value


def _loss_lists(loss, source):
    """(types, coef) of `distill.loss`, one type per coef (PaddleSeg's rule), checked."""
    types, coef = loss["types"], loss["coef"]
    if not isinstance(types, list) or not types or not all(isinstance(t, dict) for t in types):
        raise ConfigError(f"`distill.loss.types` in {source} must be a list of losses "
                          f"({{type: KLDistillationLoss, ...}}); got {types!r}.")
    if not isinstance(coef, list) or not coef or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and c >= 0 for c in coef):
        raise ConfigError(f"`distill.loss.coef` in {source} must be a list of weights >= 0; got {coef!r}.")
    if len(types) == 1:
        types = types * len(coef)
    if len(types) != len(coef):
        raise ConfigError(f"`distill.loss` in {source} has {len(types)} types and {len(coef)} coef: "
                          "give one type (used for every coef) or one per coef.")
    for i, loss_type in enumerate(types):
        _check_types(loss_type, f"distill.loss.types[{i}] of {source}")
    return tuple(types), tuple(float(c) for c in coef)


def read_distill_section(dic, source="the config"):
    """The checked `distill` section of config dict `dic` as a DistillSpec, or None without one.

    Raises ConfigError naming the key for unknown, missing or ill-typed keys, and for
    PaddleSeg's `distill_loss` (see module doc).
    """
    if "distill_loss" in dic:
        raise ConfigError(f"{source} has `distill_loss`, PaddleSeg slim's key, which lpsnet train does not "
                          "read: move it under `distill.loss` and name the teacher in "
                          "`distill.teacher` (config, checkpoint).")
    if dic.get(SECTION) is None:
        return None
    section = _section(dic[SECTION], "distill", source)
    teacher = _section(section["teacher"], "distill.teacher", source)
    types, coef = _loss_lists(_section(section["loss"], "distill.loss", source), source)
    return DistillSpec(_path(teacher["config"], "distill.teacher.config", source),
                       _path(teacher["checkpoint"], "distill.teacher.checkpoint", source),
                       types, coef, source)


# -- the teacher ---------------------------------------------------------------------
class FrozenTeacher(nn.Layer):
    """A trained model that gives logits and never learns.

    Every parameter has stop_gradient; the model stays in eval mode whatever `train()`
    or `eval()` calls reach it (BN uses, and never updates, its running statistics);
    forward runs under no_grad and returns the main logits.

    Args:
        model (nn.Layer): The teacher, weights loaded; returns a list of logits.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        for param in model.parameters():
            param.stop_gradient = True
        self._hold_eval()

    def _hold_eval(self):
        # Set the flags only: Layer.eval() would also switch Paddle's global tracer
        # mode under the student's feet.
        self.training = False
        for layer in self.sublayers():
            layer.training = False

    def train(self, mode=True):
        """Stays in eval mode (a frozen teacher never trains)."""
        self._hold_eval()
        return self

    def eval(self):
        self._hold_eval()
        return self

    def forward(self, images):
        """images: [N, C, H, W] -> main logits [N, K, h, w] (no gradient)."""
        self._hold_eval()  # even if someone called .train() on the wrapped model
        if getattr(self.model, "data_format", "NCHW") == "NHWC":
            images = images.transpose([0, 2, 3, 1])
        with paddle.no_grad():
            out = self.model(images)
        logits = out[0] if isinstance(out, (list, tuple)) else out
        return logits.detach()


def _with_context(where, action):
    """Run `action`; an LPSNetError it raises gets `where` in front of its message."""
    try:
        return action()
    except LPSNetError as exc:
        raise type(exc)(f"{where}: {exc}") from exc


def _num_classes(model, cfg):
    found = getattr(model, "num_classes", None)
    return found if found is not None else cfg.dic.get("model", {}).get("num_classes")


def build_teacher(spec, num_classes=None):
    """The FrozenTeacher of a DistillSpec: built from its config, every tensor from its checkpoint.

    With `num_classes` (the student's), a teacher of other classes is a ConfigError.
    Raises ConfigError / CheckpointError naming the section's key and the file.
    """
    from paddleseg.utils import logger
    config_key = f"distill.teacher.config ({spec.teacher_config}) of {spec.source}"
    cfg = _with_context(config_key, lambda: load_config(spec.teacher_config))
    model = _with_context(config_key, lambda: build_model(cfg, pretrained=False))
    teacher_classes = _num_classes(model, cfg)
    if num_classes is not None and teacher_classes is not None and teacher_classes != num_classes:
        raise ConfigError(f"The teacher of {spec.source} ({spec.teacher_config}) has {teacher_classes} "
                          f"classes but the student has {num_classes}: distillation compares the class "
                          "scores one to one; train a teacher on the student's classes.")
    checkpoint_key = f"distill.teacher.checkpoint of {spec.source}"
    state = _with_context(checkpoint_key, lambda: read_state_dict(spec.teacher_checkpoint))
    count = _with_context(checkpoint_key, lambda: strict_load(model, state, spec.teacher_checkpoint))
    logger.info(f"Teacher {type(model).__name__} ({spec.teacher_config}): loaded {count}/{count} tensors "
                f"from {spec.teacher_checkpoint}; frozen, in eval mode.")
    return FrozenTeacher(model)


# -- the loss term ---------------------------------------------------------------------
def _teacher_like(teacher_logits, logits):
    """The teacher's logits at the size of the student's `logits`; ConfigError if the classes differ."""
    if teacher_logits.shape[1] != logits.shape[1]:
        raise ConfigError(f"Distillation: the teacher gives {teacher_logits.shape[1]} class scores per "
                          f"pixel, the student {logits.shape[1]}; they must be the same classes.")
    if list(teacher_logits.shape[2:]) != list(logits.shape[2:]):
        teacher_logits = F.interpolate(teacher_logits, size=logits.shape[2:], mode="bilinear",
                                       align_corners=False)  # [N, K, h_student, w_student]
    return teacher_logits


class DistillTerm:
    """A LossComputer term: sum over i of coef[i] * losses[i](student output i, teacher logits).

    The teacher runs once per step on the batch's images. Losses are computed in
    float32 (the student's logits are cast under AMP).

    Args:
        teacher (FrozenTeacher): The teacher.
        losses (list): Loss layers called as loss(student_logits, teacher_logits).
        coef (list[float]): One weight per loss, for the student's outputs in order.
    """
    name = "distill"

    def __init__(self, teacher, losses, coef):
        if len(losses) != len(coef):
            raise ValueError(f"DistillTerm needs one loss per coef; got {len(losses)} and {len(coef)}.")
        self.teacher = teacher
        self.losses = list(losses)
        self.coef = [float(c) for c in coef]

    def __call__(self, logits_list, batch):
        if len(self.coef) > len(logits_list):
            raise ConfigError(f"`distill.loss` has {len(self.coef)} coef but the student returns "
                              f"{len(logits_list)} outputs in training; give at most one coef per output.")
        target = self.teacher(batch["img"]).astype("float32")  # [N, K, h, w]
        total = None
        for loss, coef, logits in zip(self.losses, self.coef, logits_list):
            logits = logits.astype("float32")
            part = coef * loss(logits, _teacher_like(target, logits))
            total = part if total is None else total + part
        return total


def _build_losses(cfg, spec):
    from paddleseg.cvlibs import SegBuilder
    builder = SegBuilder(cfg)
    losses = []
    for i, loss_cfg in enumerate(spec.loss_types):
        try:
            losses.append(builder.build_component(loss_cfg))
        except (RuntimeError, TypeError, ValueError) as exc:
            cause = exc.__cause__ or exc.__context__ or exc  # SegBuilder wraps the loss's own error
            raise ConfigError(f"Cannot build `distill.loss.types[{i}]` ({loss_cfg.get('type')}) of "
                              f"{spec.source}: {cause}") from exc
    return losses


def build_distill_term(cfg, config_path, student):
    """The DistillTerm of config `cfg` (a paddleseg Config) for model `student`, or None.

    None when the config has no `distill` section; otherwise the teacher is built,
    loaded, checked against the student's classes and frozen (see module doc).
    """
    spec = read_distill_section(cfg.dic, config_path)
    if spec is None:
        return None
    losses = _build_losses(cfg, spec)
    inner = getattr(student, "_layers", student)  # paddle.DataParallel keeps the model in _layers
    teacher = build_teacher(spec, _num_classes(inner, cfg))
    return DistillTerm(teacher, losses, spec.coef)
