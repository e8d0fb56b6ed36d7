"""LPS-Net ImageNet classifiers as PaddleClas architectures (`Arch.name`).

PaddleClas's `build_model` looks `Arch.name` up as an attribute of its arch module
(`ppcls.arch` in a source tree, `paddleclas.ppcls.arch` in the wheel) and calls it
with the other Arch keys. `register_ppcls_archs` adds the entries below to such a
module; `lpsnet pretrain` calls it, importing paddleseg_lpsnet never does.

- LPSNet_S, LPSNet_M, LPSNet_L: the paper's variants;
- LPSNet: any depths / channels / scale_ratios (e.g. a tiny one for tests).
The state dict is the classifier form of LPSNetBackbone (backbone keys + fc.*).
"""
from paddleseg_lpsnet.errors import ConfigError, LPSNetError
from paddleseg_lpsnet.models.backbones.lpsnet import LPSNET_ARCHS, LPSNetBackbone

__all__ = ["LPSNet", "LPSNet_S", "LPSNet_M", "LPSNet_L", "PPCLS_ARCHS", "register_ppcls_archs"]


def _pretrained_path(name, pretrained, use_ssld):
    """PaddleClas's `pretrained` (False, True or a path) as a path or None."""
    if use_ssld:
        raise ConfigError(f"Arch {name}: use_ssld is not available; no SSLD weights exist for LPS-Net.")
    if pretrained is True:
        raise ConfigError(f"Arch {name}: pretrained: True downloads published weights, and none are "
                          "published for LPS-Net classifiers; give a .pdparams path or False.")
    return pretrained or None


def LPSNet(depths, channels, scale_ratios, class_num=1000, pretrained=False, use_ssld=False, **kwargs):
    """LPS-Net ImageNet classifier of any architecture.

    Args:
        depths (list[int]): Blocks per stage.
        channels (list[int]): Channels per stage.
        scale_ratios (list[float]): Input scale of each path (1 to 3 paths).
        class_num (int, optional): Number of classes. Default: 1000.
        pretrained (bool|str, optional): False, or a classifier .pdparams whose every
            tensor must load. Default: False.
        use_ssld (bool, optional): Unsupported (PaddleClas's SSLD weights). Default: False.
        **kwargs: Other LPSNetBackbone arguments (in_channels, interaction_begin).
    """
    path = _pretrained_path("LPSNet", pretrained, use_ssld)
    return LPSNetBackbone(depths, channels, scale_ratios, class_num=class_num, pretrained=path, **kwargs)


def _variant(name, class_num, pretrained, use_ssld, kwargs):
    fixed = [k for k in ("depths", "channels", "scale_ratios") if k in kwargs]
    if fixed:
        raise ConfigError(f"Arch LPSNet_{name} fixes {', '.join(fixed)}; use Arch.name: LPSNet to set them.")
    path = _pretrained_path(f"LPSNet_{name}", pretrained, use_ssld)
    return LPSNetBackbone(**LPSNET_ARCHS[name], class_num=class_num, pretrained=path, **kwargs)


def LPSNet_S(class_num=1000, pretrained=False, use_ssld=False, **kwargs):
    """LPS-Net-S classifier (depths 1,3,3,10,10; channels 8,24,48,96,96; ratios 3/4, 1/4).

    Args:
        class_num (int, optional): Number of classes. Default: 1000.
        pretrained (bool|str, optional): False or a classifier .pdparams. Default: False.
        use_ssld (bool, optional): Unsupported. Default: False.
        **kwargs: in_channels, interaction_begin.
    """
    return _variant("S", class_num, pretrained, use_ssld, kwargs)


def LPSNet_M(class_num=1000, pretrained=False, use_ssld=False, **kwargs):
    """LPS-Net-M classifier: LPS-Net-S with the first ratio raised to 1.

    Args:
        class_num (int, optional): Number of classes. Default: 1000.
        pretrained (bool|str, optional): False or a classifier .pdparams. Default: False.
        use_ssld (bool, optional): Unsupported. Default: False.
        **kwargs: in_channels, interaction_begin.
    """
    return _variant("M", class_num, pretrained, use_ssld, kwargs)


def LPSNet_L(class_num=1000, pretrained=False, use_ssld=False, **kwargs):
    """LPS-Net-L classifier: LPS-Net-M with stages 3-5 widened to 64, 160, 160.

    Args:
        class_num (int, optional): Number of classes. Default: 1000.
        pretrained (bool|str, optional): False or a classifier .pdparams. Default: False.
        use_ssld (bool, optional): Unsupported. Default: False.
        **kwargs: in_channels, interaction_begin.
    """
    return _variant("L", class_num, pretrained, use_ssld, kwargs)


PPCLS_ARCHS = {"LPSNet": LPSNet, "LPSNet_S": LPSNet_S, "LPSNet_M": LPSNet_M, "LPSNet_L": LPSNet_L}


def register_ppcls_archs(arch_module):
    """Make PaddleClas's build_model find our architectures in `arch_module`.

    Raises LPSNetError if the module already has another object under one of our names.
    """
    for name, factory in PPCLS_ARCHS.items():
        existing = getattr(arch_module, name, None)
        if existing is not None and existing is not factory:
            raise LPSNetError(f"{arch_module.__name__}.{name} already exists ({existing!r}); "
                              "refusing to replace a PaddleClas architecture.")
        setattr(arch_module, name, factory)
