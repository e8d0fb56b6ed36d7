"""LPS-Net sizes: parameters and GMACs as the paper and PaddleSeg give them; metafile agrees."""
import os

import pytest
import yaml

from paddleseg_lpsnet.models import LPSNetSeg
from paddleseg_lpsnet.models.backbones import LPSNET_ARCHS, LPSNetBackbone
from paddleseg_lpsnet.utils.flops import count_macs, count_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# params with BN affine (3.38M / 3.38M / 9.17M), GMACs over convs at 1024x2048
EXPECTED = {"S": (3.38e6, 10.42), "M": (3.38e6, 17.72), "L": (9.17e6, 43.81)}


@pytest.mark.parametrize("variant", ["S", "M", "L"])
def test_params_and_gmacs(variant):
    model = LPSNetSeg(19, LPSNetBackbone(**LPSNET_ARCHS[variant]))
    params, gmacs = EXPECTED[variant]
    assert round(count_params(model) / 1e6, 2) == params / 1e6
    macs = count_macs(model, [1, 3, 1024, 2048])
    assert set(macs["by_type"]) == {"Conv2D"}
    assert round(macs["total"] / 1e9, 2) == gmacs


def test_metafile_matches_models():
    with open(os.path.join(ROOT, "configs", "lpsnet", "metafile.yml")) as f:
        meta = yaml.safe_load(f)
    for entry in meta["Models"]:
        variant = entry["Name"].split("_")[-1].upper()
        model = LPSNetSeg(19, LPSNetBackbone(**LPSNET_ARCHS[variant]))
        assert entry["Metadata"]["params"] == count_params(model)
        assert entry["Metadata"]["gmacs_1024x2048"] == EXPECTED[variant][1]
        assert os.path.isfile(os.path.join(ROOT, entry["Config"]))
