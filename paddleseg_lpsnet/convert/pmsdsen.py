"""Checkpoint format for PMSDSENet: the authors' PyTorch code (liux520/PMSDSEN).

Their training script saves {"epoch", "state_dict", "optimizer", "pred"}; the state
dict has the module names of `Model/PMSDSEN.py` and `Model/modules.py` (Stem_Conv,
layerN.i.{LDI,MSLRI,Attn,...}, downN.conv3x3.cbr, upN, DWFF4/5, MSSE_, seg_head_xN),
possibly under a DataParallel "module." prefix. Every module path is renamed by
the table below; a path no rule matches stays unmapped and `convert_state` fails
naming it. BN running statistics are renamed, `num_batches_tracked` is dropped.
"""
import re

from paddleseg_lpsnet.convert import SourceFormat, register_format

_UNIT = r"(layer\d\.\d+)\."

# (authors' module path regex, our module path); applied in order, first match wins.
_MODULE_RULES = [
    (r"Stem_Conv\.0", r"stem.0.conv"), (r"Stem_Conv\.1", r"stem.0.bn"),
    (r"Stem_Conv\.3", r"stem.1.conv"), (r"Stem_Conv\.4", r"stem.1.bn"),
    # PMSDSE units
    (_UNIT + r"entry_bn_act\.br\.0", r"\1.entry.bn"),
    (_UNIT + r"bn_act\.br\.0", r"\1.mid.bn"),
    (_UNIT + r"conv1x1\.0", r"\1.proj.conv"), (_UNIT + r"conv1x1\.1", r"\1.proj.bn"),
    (_UNIT + r"Attn\.conv", r"\1.eca.conv"),
    (_UNIT + r"Attn_output\.conv", r"\1.out_eca.conv"),
    (_UNIT + r"(LDI|MSLRI)\.conv\.1\.conv", lambda m: f"{m[1]}.{m[2].lower()}.eca.conv"),
    (_UNIT + r"LDI\.conv\.([02])\.(compress|process)\.([01])",
     lambda m: f"{m[1]}.ldi.basic{int(m[2]) // 2 + 1}.{m[3]}.{_CONV_BN[m[4]]}"),
    (_UNIT + r"MSLRI\.conv\.([02])\.conv\.([01])",
     lambda m: f"{m[1]}.mslri.basic{int(m[2]) // 2 + 1}.reduce.{_CONV_BN[m[3]]}"),
    (_UNIT + r"MSLRI\.conv\.([02])\.LRMS\.(head|tail)\.([01])",
     lambda m: f"{m[1]}.mslri.basic{int(m[2]) // 2 + 1}.lrms."
               f"{'proj_in' if m[3] == 'head' else 'proj_out'}.{_CONV_BN[m[4]]}"),
    (_UNIT + r"MSLRI\.conv\.([02])\.LRMS\.x([1-4])\.([01])",
     lambda m: f"{m[1]}.mslri.basic{int(m[2]) // 2 + 1}.lrms.branches.{int(m[3]) - 1}.{_CONV_BN[m[4]]}"),
    # down-sampling, up-sampling, fusion
    (r"(down[23])\.conv3x3\.cbr\.([01])", lambda m: f"{m[1]}.conv.{_CONV_BN[m[2]]}"),
    (r"(down[23])\.bn_act\.br\.0", r"\1.out.bn"),
    (r"(up[45])\.(conv|bn)", r"\1.\2"),
    (r"DWFF([45])\.conv_du\.([01])", lambda m: f"fuse{m[1]}.squeeze.{_CONV_BN[m[2]]}"),
    (r"DWFF([45])\.fcs\.([01])", r"fuse\1.select.\2"),
    # MSSE
    (r"MSSE_\.x0\.([01])", lambda m: f"msse.reduce.{_CONV_BN[m[1]]}"),
    (r"MSSE_\.x([1-3])\.([12])", lambda m: f"msse.pooled.{int(m[1]) - 1}.proj.{_CONV_BN[str(int(m[2]) - 1)]}"),
    (r"MSSE_\.x4\.([12])", lambda m: f"msse.global_branch.{_CONV_BN[str(int(m[1]) - 1)]}"),
    (r"MSSE_\.p([1-4])\.([01])", lambda m: f"msse.refine.{int(m[1]) - 1}.{_CONV_BN[m[2]]}"),
    (r"MSSE_\.(tail|identity)\.(0|2|3\.conv)",
     lambda m: f"msse.{'tail' if m[1] == 'tail' else 'shortcut'}.{_MSSE_OUT[m[2]]}"),
    # heads: Conv, BN, GELU, Conv, BN
    (r"(seg_head_x[248])\.([0134])", lambda m: f"{m[1]}.{_HEAD[m[2]]}"),
]
_CONV_BN = {"0": "conv", "1": "bn"}
_MSSE_OUT = {"0": "pre.bn", "2": "conv", "3.conv": "eca.conv"}
_HEAD = {"0": "hidden.conv", "1": "hidden.bn", "3": "classify.conv", "4": "classify.bn"}
_LEAF = {"weight": "weight", "bias": "bias", "running_mean": "_mean", "running_var": "_variance"}
_COMPILED = [(re.compile(pattern), target) for pattern, target in _MODULE_RULES]


def our_module_path(path):
    """Our module path for one of the authors' module paths, or None."""
    for pattern, target in _COMPILED:
        m = pattern.fullmatch(path)
        if m:
            return target(m) if callable(target) else m.expand(target)
    return None


def _strip(key):
    return key[len("module."):] if key.startswith("module.") else key


def _detect(state, model):
    return (type(model).__name__ == "PMSDSENet"
            and any(_strip(k).startswith(("Stem_Conv.", "MSSE_.")) for k in state))


def _map(state, model):
    renamed, dropped = {}, []
    for key, arr in state.items():
        path, _, leaf = _strip(key).rpartition(".")
        if leaf == "num_batches_tracked":
            dropped.append(key)
            continue
        ours = our_module_path(path)
        if ours is not None and leaf in _LEAF:
            renamed[key] = (f"{ours}.{_LEAF[leaf]}", arr)
    return renamed, dropped, []


register_format(SourceFormat("authors-pmsdsen", _detect, _map,
                             "liux520/PMSDSEN Trainer_seg.py checkpoint (.pth, 'state_dict')"))
