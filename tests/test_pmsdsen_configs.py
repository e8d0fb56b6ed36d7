"""The PMSDSEN configs: the authors' recipe, every trainable parameter in the optimizer once
(heads at 10x), the weighted three-head loss, and stage 2 from stage 1 with BN frozen."""
import os

import numpy as np
import paddle
import pytest
from paddleseg.cvlibs import SegBuilder

from paddleseg_lpsnet.models import PMSDSENet
from paddleseg_lpsnet.utils.config import load_config, null_pretrained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs", "pmsdsen")
CITYSCAPES_WEIGHTS = [2.8149, 6.9850, 3.7890, 9.9428, 9.7702, 9.5110, 10.3113, 10.0264, 4.6323, 9.5608,
                      7.8698, 9.5168, 10.3737, 6.6616, 10.2604, 10.2878, 10.2898, 10.4053, 10.1381]
# (file, batch, iters, lr, crop, scale range, freeze_bn)
RECIPES = {
    "pmsdsen_cityscapes_stage1.yml": (12, 123500, 0.045, [512, 256], (0.25, 0.5), False),
    "pmsdsen_cityscapes_stage2.yml": (6, 247500, 0.01, [1024, 512], (0.35, 1.0), True),
    "pmsdsen_camvid.yml": (12, 39000, 0.045, [480, 360], (0.35, 1.0), False),
}


def _builder(name, opts=None):
    cfg = load_config(os.path.join(CONFIGS, name), opts=opts)
    cfg.dic["model"] = null_pretrained(cfg.dic["model"])
    return cfg, SegBuilder(cfg)


def _transform(d, kind):
    return [t for t in d["train_dataset"]["transforms"] if t["type"] == kind][0]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe(name):
    batch, iters, lr, crop, scales, freeze = RECIPES[name]
    cfg, builder = _builder(name)
    d = cfg.dic
    assert (d["batch_size"], d["iters"]) == (batch, iters)
    assert d["lr_scheduler"] == {"type": "PolynomialDecay", "learning_rate": lr, "end_lr": 0.0, "power": 0.9}
    assert d["optimizer"]["momentum"] == 0.9 and d["optimizer"]["weight_decay"] == 1.0e-4
    assert _transform(d, "RandomPaddingCrop")["crop_size"] == crop
    scaling = _transform(d, "ResizeStepScaling")
    assert (scaling["min_scale_factor"], scaling["max_scale_factor"], scaling["scale_step_size"]) == (*scales, 0)
    assert d["test_config"] == {"rescale": 0.5}
    model = builder.model
    assert isinstance(model, PMSDSENet) and model.freeze_bn is freeze
    assert (model.base_channels, model.blocks) == (32, (1, 2, 6, 2, 1))
    if "cityscapes" in name:
        distort = _transform(d, "RandomDistort")  # ColorJitter(0.5, 0.5, 0.5), every image
        assert all(distort[f"{k}_range"] == 0.5 and distort[f"{k}_prob"] == 1.0
                   for k in ("brightness", "contrast", "saturation"))
        assert distort["hue_prob"] == 0.0


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_trainable_parameter_reaches_the_optimizer_once_heads_at_10x(name):
    _, builder = _builder(name)
    model, opt = builder.model, builder.optimizer
    assert type(opt).__name__ == "Momentum" and opt._momentum == 0.9
    params = [p for group in opt._param_groups for p in group["params"]]
    in_opt = [id(p) for p in params]
    assert len(in_opt) == len(set(in_opt)), "a parameter is in two groups"
    names = {id(p): n for n, p in model.named_parameters()}
    trainable = {id(p) for p in model.parameters() if not p.stop_gradient}
    assert set(in_opt) == trainable
    # the transposed convs and ECA's Conv1d weights the released code left out
    assert {"up4.conv.weight", "up5.conv.weight", "layer3.5.out_eca.conv.weight",
            "msse.tail.eca.conv.weight"} <= {names[i] for i in in_opt}
    scale = {names[id(p)]: p.optimize_attr["learning_rate"] for p in params}
    heads = {n for n in scale if n.startswith("seg_head_x")}
    assert heads and all(scale[n] == 10.0 for n in heads)
    assert all(v == 1.0 for n, v in scale.items() if n not in heads)
    # 922,373 with 19 classes; each class has 121 head weights (convs 16+32+64 and a bias,
    # a BN scale and shift, in each of the three heads); frozen BN affine stays out
    expected = 922373 - 121 * (19 - model.num_classes) - (
        sum(2 * l.weight.shape[0] for l in model.sublayers() if isinstance(l, paddle.nn.BatchNorm2D))
        if model.freeze_bn else 0)
    assert sum(int(np.prod(p.shape)) for p in params) == expected


@pytest.mark.parametrize("name,classes", [("pmsdsen_cityscapes_stage2.yml", 19), ("pmsdsen_camvid.yml", 11)])
def test_loss_is_weighted_ce_on_three_heads(name, classes):
    cfg, builder = _builder(name)
    loss = builder.loss
    assert loss["coef"] == [1, 0.1, 0.1]
    assert [type(l).__name__ for l in loss["types"]] == ["CrossEntropyLoss"] * 3
    for l in loss["types"]:
        assert l.ignore_index == 255 and l.weight.shape == [classes]
        if classes == 19:
            np.testing.assert_allclose(l.weight.numpy(), CITYSCAPES_WEIGHTS, rtol=1e-6)


def test_stage2_starts_from_stage1_weights_with_bn_frozen(tmp_path, randomize_bn):
    stage1 = randomize_bn(PMSDSENet(19))
    path = str(tmp_path / "best_model" / "model.pdparams")
    os.makedirs(os.path.dirname(path))
    paddle.save(stage1.state_dict(), path)
    cfg = load_config(os.path.join(CONFIGS, "pmsdsen_cityscapes_stage2.yml"),
                      opts=[f"model.pretrained={os.path.dirname(path)}"])
    model = SegBuilder(cfg).model
    model.train()
    loaded = model.state_dict()
    for key, value in stage1.state_dict().items():
        np.testing.assert_array_equal(loaded[key].numpy(), value.numpy(), err_msg=key)
    x = paddle.randn([2, 3, 64, 96])
    stage1.eval()
    with paddle.no_grad():
        np.testing.assert_allclose(model(x)[0].numpy(), stage1(x)[0].numpy(), rtol=1e-5, atol=1e-5)


def test_camvid_config_trains_on_train_val_and_evaluates_on_test():
    d = load_config(os.path.join(CONFIGS, "pmsdsen_camvid.yml")).dic
    assert d["model"]["num_classes"] == 11
    assert (d["train_dataset"]["type"], d["train_dataset"]["split"], d["train_dataset"]["mode"]) == (
        "CamVidDataset", ["train", "val"], "train")
    assert (d["val_dataset"]["split"], d["val_dataset"]["mode"]) == ("test", "val")


def test_metafile_matches_configs_and_models():
    import yaml

    from test_pmsdsen import PUBLISHED_GMACS
    with open(os.path.join(CONFIGS, "metafile.yml")) as f:
        meta = yaml.safe_load(f)
    assert {m["Name"] + ".yml" for m in meta["Models"]} == set(RECIPES)
    for entry in meta["Models"]:
        _, builder = _builder(os.path.basename(entry["Config"]))
        # weights with BN affine (frozen or not), without BN statistics
        model = builder.model
        stats = {id(t) for l in model.sublayers() if isinstance(l, paddle.nn.BatchNorm2D)
                 for t in (l._mean, l._variance)}
        params = sum(int(np.prod(p.shape)) for p in model.parameters() if id(p) not in stats)
        assert entry["Metadata"]["params"] == params
        for key, value in PUBLISHED_GMACS.items():
            if key in entry["Metadata"]:
                assert entry["Metadata"][key] == value
