"""Registered names: ours never replace upstream's, and every one is covered by tests."""
import json
import subprocess
import sys

from specs import ALL

_PROBE = r"""
import json, warnings
from paddleseg.cvlibs import manager
import paddleseg.models, paddleseg.datasets, paddleseg.transforms, paddleseg.optimizers
mgrs = dict(MODELS=manager.MODELS, BACKBONES=manager.BACKBONES, DATASETS=manager.DATASETS,
            TRANSFORMS=manager.TRANSFORMS, LOSSES=manager.LOSSES, OPTIMIZERS=manager.OPTIMIZERS)
before = {m: dict(g.components_dict) for m, g in mgrs.items()}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import paddleseg_lpsnet
after = {m: dict(g.components_dict) for m, g in mgrs.items()}
print(json.dumps(dict(
    upstream=sorted({n for d in before.values() for n in d}),
    replaced=sorted(n for m in mgrs for n in before[m] if after[m][n] is not before[m][n]),
    ours={m: sorted(n for n, c in after[m].items()
                    if getattr(c, "__module__", "").startswith("paddleseg_lpsnet")) for m in mgrs},
    warnings=[str(w.message) for w in caught if "exists already" in str(w.message)],
)))
"""


def _probe():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_name_collides_with_upstream_paddleseg():
    info = _probe()
    assert "LPSNet" in info["upstream"], "the installed paddleseg registers LPSNet"
    ours = {n for names in info["ours"].values() for n in names}
    assert ours, "importing paddleseg_lpsnet registers components"
    assert ours.isdisjoint(info["upstream"]), sorted(ours & set(info["upstream"]))
    assert info["replaced"] == []
    assert info["warnings"] == []
    # unique across managers too: SegBuilder searches them all in turn
    flat = [n for names in info["ours"].values() for n in names]
    assert len(flat) == len(set(flat))


def test_every_registered_component_is_in_the_test_specs():
    info = _probe()
    ours = {n for names in info["ours"].values() for n in names}
    assert ours == ALL, f"untested: {sorted(ours - ALL)}; stale specs: {sorted(ALL - ours)}"


def test_import_has_no_side_effects_beyond_registration():
    code = ("import sys, paddle; dev = paddle.get_device(); import paddleseg_lpsnet, paddleseg;"
            "import paddleseg.models.losses.cross_entropy_loss as ce, paddleseg.utils.metrics as mt;"
            "print(paddle.get_device() == dev, ce.CrossEntropyLoss.forward.__module__,"
            " mt.calculate_area.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "paddleseg.models.losses.cross_entropy_loss",
                                  "paddleseg.utils.metrics"]
