"""Checkpoint format for FasterSegNet: the authors' PyTorch state dicts.

authors-fasterseg: `weights0.pt` / `weights1.pt` as VITA-Group/FasterSeg's train.py
saves them (`torch.save(model.state_dict())` of `Network_Multi_Path_Infer` built with
the output branches [1/32, 1/16]). Their layout:

- stem.0.conv.{0 conv, 1 bn}; stem.{1,2}.{conv1, bn1, conv2, bn2};
- cells.{layer}-{branch}._op._op.{conv1, bn1[, conv2, bn2]}: layers count from the
  first cell after the stem, branch 0 reaches 1/32 and branch 1 stops at 1/16. A
  cell shared by both branches is stored twice (`-0` and `-1`, the same tensor);
- arms32.{0,1}, refines32.{0,1}, arms16, refines16: .conv.{0 conv, 1 bn};
- ffm.conv_1x1.{conv, bn}; heads8 / heads16 / heads32 .conv_3x3.{conv, bn} and
  .conv_1x1 (classifier, with bias); heads16 / heads32 exist when the model was
  built for training.

Dropped, and reported: every num_batches_tracked, the second copy of each shared
cell (after checking it equals the first), and ffm.channel_attention.* (weights
their forward never uses). A checkpoint without heads16 / heads32 leaves our
training-only heads at their initial values, and the report says so. A
DataParallel `module.` prefix is accepted.
"""
import numpy as np

from paddleseg_lpsnet.convert import SourceFormat, register_format
from paddleseg_lpsnet.errors import CheckpointError

_BN_LEAVES = {"weight": "weight", "bias": "bias", "running_mean": "_mean", "running_var": "_variance"}
_UNUSED = ("ffm.channel_attention.",)
_AUX = {"aux_head16": "heads16", "aux_head32": "heads32"}
_PREFIX = "module."


def _is_fasterseg(model):
    return type(model).__name__ == "FasterSegNet"


def _strip(key, prefixed):
    return key[len(_PREFIX):] if prefixed else key


def _has_prefix(state):
    return bool(state) and all(k.startswith(_PREFIX) for k in state)


def _detect(state, model):
    names = {_strip(k, _has_prefix(state)) for k in state}
    return _is_fasterseg(model) and "stem.0.conv.0.weight" in names and any(
        k.startswith("cells.") for k in names)


def _cell_pairs(ours, theirs, cell):
    """(our ConvBNAct, their conv, their bn) for each conv of a cell or stem block."""
    return [(f"{ours}.convs.{j}", f"{theirs}.conv{j + 1}", f"{theirs}.bn{j + 1}")
            for j in range(len(cell.convs))]


def _layout(model):
    """(our prefix, the authors' conv prefix, their BN prefix or None for a biased conv)."""
    pairs = [("stem.0", "stem.0.conv.0", "stem.0.conv.1")]
    for i in (1, 2):
        pairs += _cell_pairs(f"stem.{i}", f"stem.{i}", model.stem[i])
    n_shared = len(model.shared)
    for i, cell in enumerate(model.shared):
        pairs += _cell_pairs(f"shared.{i}", f"cells.{i}-0._op._op", cell)
    for name, branch in (("branch32", 0), ("branch16", 1)):
        for i, cell in enumerate(getattr(model, name).cells):
            pairs += _cell_pairs(f"{name}.cells.{i}", f"cells.{n_shared + i}-{branch}._op._op", cell)
    for name, arms, refines in (("fusion32", "arms32.{}", "refines32.{}"), ("fusion16", "arms16", "refines16")):
        for k in range(len(getattr(model, name).reduce)):
            for part, theirs in (("reduce", arms), ("refine", refines)):
                prefix = theirs.format(k)
                pairs.append((f"{name}.{part}.{k}", f"{prefix}.conv.0", f"{prefix}.conv.1"))
    pairs.append(("fuse", "ffm.conv_1x1.conv", "ffm.conv_1x1.bn"))
    for ours, theirs in (("head", "heads8"), ("aux_head16", "heads16"), ("aux_head32", "heads32")):
        pairs.append((f"{ours}.conv", f"{theirs}.conv_3x3.conv", f"{theirs}.conv_3x3.bn"))
        pairs.append((f"{ours}.classifier", f"{theirs}.conv_1x1", None))
    return pairs


def _tensor_names(ours, conv, bn):
    """(their key, our key) of every tensor of one conv (+ BN)."""
    if bn is None:
        return [(f"{conv}.{leaf}", f"{ours}.{leaf}") for leaf in ("weight", "bias")]
    names = [(f"{conv}.weight", f"{ours}.conv.weight")]
    return names + [(f"{bn}.{src}", f"{ours}.bn.{dst}") for src, dst in _BN_LEAVES.items()]


def _shared_copies(model, source, by_name):
    """Source keys of the second copy of each shared cell; raises if a copy differs."""
    copies = []
    for i in range(len(model.shared)):
        first = f"cells.{i}-0."
        for name in sorted(k for k in by_name if k.startswith(f"cells.{i}-1.")):
            twin = first + name[len(first):]
            if twin in by_name and not np.array_equal(source[by_name[twin]], source[by_name[name]]):
                raise CheckpointError(
                    f"{name} and {twin} differ, but cell {i} is shared by both branches in the "
                    "authors' network (the checkpoint is damaged or of another architecture).")
            copies.append(by_name[name])
    return copies


def _map(state, model):
    prefixed = _has_prefix(state)
    by_name = {_strip(k, prefixed): k for k in state}  # their name -> source key
    renamed, fresh = {}, []
    absent_aux = {ours for ours, theirs in _AUX.items()
                  if not any(k.startswith(theirs + ".") for k in by_name)}
    for ours, conv, bn in _layout(model):
        if ours.split(".")[0] in absent_aux:
            continue
        for theirs, dst in _tensor_names(ours, conv, bn):
            if theirs in by_name:
                renamed[by_name[theirs]] = (dst, state[by_name[theirs]])
    for ours in sorted(absent_aux):
        fresh += [k for k in model.state_dict() if k.startswith(ours + ".")]
    dropped = {src for name, src in by_name.items()
               if name.endswith(".num_batches_tracked") or name.startswith(_UNUSED)}
    dropped.update(_shared_copies(model, state, by_name))
    return renamed, sorted(dropped), fresh


register_format(SourceFormat("authors-fasterseg", _detect, _map,
                             "VITA-Group/FasterSeg train.py checkpoint (weights0.pt / weights1.pt)"))
