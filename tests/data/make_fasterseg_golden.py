"""Regenerate tests/data/fasterseg_authors_{student,teacher}.json from the authors' own code.

Not run by the tests. Needs torch and a checkout of VITA-Group/FasterSeg whose path
contains "FasterSeg" (their operations.py looks for it in the working directory):

    python tests/data/make_fasterseg_golden.py --authors /path/to/FasterSeg

It builds their `Network_Multi_Path_Infer` from train/fasterseg/arch_{0,1}.pt exactly
as their train.py does (Fch 12, 16 layers, output branches [2, 1]), fills every tensor
with `synthetic_value`, and records keys, shapes, shared-cell aliases and outputs
(eval: the main logits; train: pred8, pred16, pred32, with BN on its running
statistics, since batch statistics of the 1x2 maps inside zoomed 1/32 cells are too
noise-sensitive to compare across frameworks). Their helper modules that only
serve latency and FLOPs measurement (thop, easydict, tools/utils/darts_utils) are
replaced by stubs, since the network itself does not use them.
"""
import argparse
import json
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from fasterseg_golden import summarise, synthetic_input, synthetic_state  # noqa: E402

ARCHS = {"student": (1, (8. / 12, 8. / 12)), "teacher": (0, (1., 1.))}


def _stub_helpers():
    """Modules the authors' network imports for latency/FLOPs only."""
    thop = types.ModuleType("thop")
    thop.profile = lambda *a, **k: (0, 0)
    easydict = types.ModuleType("easydict")
    easydict.EasyDict = type("EasyDict", (dict,), {"__getattr__": dict.__getitem__,
                                                   "__setattr__": dict.__setitem__})
    utils = types.ModuleType("utils")
    darts = types.ModuleType("utils.darts_utils")
    darts.compute_latency_ms_pytorch = lambda *a, **k: 0.0
    utils.darts_utils = darts
    sys.modules.update({"thop": thop, "easydict": easydict, "utils": utils, "utils.darts_utils": darts})


def _import_network(train_dir):
    _stub_helpers()
    os.chdir(train_dir)
    sys.path.insert(0, train_dir)
    load = np.load
    np.load = lambda *a, **k: load(*a, **{**k, "allow_pickle": True})  # their latency table
    try:
        from model_seg import Network_Multi_Path_Infer
    finally:
        np.load = load
    return Network_Multi_Path_Infer


def _build(network, train_dir, arch_idx, stem_head_width):
    import torch
    state = torch.load(os.path.join(train_dir, "fasterseg", f"arch_{arch_idx}.pt"),
                       map_location="cpu", weights_only=False)
    alphas = [state[f"alpha_{arch_idx}_{i}"].detach() for i in range(3)]
    betas = [None] + [state[f"beta_{arch_idx}_{i}"].detach() for i in (1, 2)]
    ratios = [state[f"ratio_{arch_idx}_{i}"].detach() for i in range(3)]
    model = network(alphas, betas, ratios, num_classes=19, layers=16, Fch=12,
                    width_mult_list=[4. / 12, 6. / 12, 8. / 12, 10. / 12, 1.],
                    stem_head_width=stem_head_width, ignore_skip=arch_idx == 0)
    model.build_structure([2, 1])
    return model


def _aliases(model):
    """Second copies of shared tensors: key -> the first key holding the same storage."""
    seen, aliases = {}, {}
    for key, value in model.state_dict(keep_vars=True).items():
        ptr = value.data_ptr()
        if ptr in seen and value.numel() > 0:
            aliases[key] = seen[ptr]
        else:
            seen[ptr] = key
    return aliases


def record(network, train_dir, name):
    import torch
    arch_idx, widths = ARCHS[name]
    model = _build(network, train_dir, arch_idx, widths)
    keys = {k: list(v.shape) for k, v in model.state_dict().items()}
    aliases = _aliases(model)
    state = synthetic_state(keys, aliases)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    x = torch.from_numpy(synthetic_input())
    with torch.no_grad():
        model.eval()
        outputs = {"eval": [summarise(model(x).numpy())]}
        model.train()
        for layer in model.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.eval()
        outputs["train"] = [summarise(o.numpy()) for o in model(x)]
    return {"source": "VITA-Group/FasterSeg train/model_seg.py, arch_%d.pt, branches [2, 1]" % arch_idx,
            "keys": keys, "aliases": aliases, "outputs": outputs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", required=True, help="checkout of VITA-Group/FasterSeg")
    parser.add_argument("--out", default=HERE)
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    train_dir = os.path.join(os.path.abspath(args.authors), "train")
    network = _import_network(train_dir)
    for name in ARCHS:
        path = os.path.join(out, f"fasterseg_authors_{name}.json")
        with open(path, "w") as f:
            json.dump(record(network, train_dir, name), f, indent=0)
        print("wrote", path)


if __name__ == "__main__":
    main()
