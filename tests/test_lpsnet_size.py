"""LPS-Net sizes: parameters and GMACs as the paper and PaddleSeg give them; metafile agrees."""
import os

import pytest
import yaml

from paddleseg_lpsnet.models import LPSNetSeg
from paddleseg_lpsnet.models.backbones import LPSNET_ARCHS, LPSNetBackbone
from paddleseg_lpsnet.utils.flops import count_macs, count_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Params as PaddleSeg reports them (BN affine and running statistics: 3.38M / 3.38M / 9.17M),
# as torch and the authors' code count them (BN affine, no running statistics), and GMACs
# over convs at 1024x2048.
EXPECTED = {"S": (3.38e6, 3375363, 10.42), "M": (3.38e6, 3375363, 17.72), "L": (9.17e6, 9159235, 43.81)}


@pytest.mark.parametrize("variant", ["S", "M", "L"])
def test_params_and_gmacs(variant):
    model = LPSNetSeg(19, LPSNetBackbone(**LPSNET_ARCHS[variant]))
    paddle_params, torch_params, gmacs = EXPECTED[variant]
    assert round(count_params(model, include_bn_stats=True) / 1e6, 2) == paddle_params / 1e6
    assert count_params(model) == torch_params
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
        assert entry["Metadata"]["params_with_bn_stats"] == count_params(model, include_bn_stats=True)
        assert entry["Metadata"]["gmacs_1024x2048"] == EXPECTED[variant][2]
        assert os.path.isfile(os.path.join(ROOT, entry["Config"]))
