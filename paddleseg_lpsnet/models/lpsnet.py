"""LPS-Net segmentation model: LPSNetBackbone + LPSNetHead, logits at input size.

See models/backbones/lpsnet.py for the paper, the reference code and the deviations
from PaddleSeg's `LPSNet` (whose registered name we must not reuse).
"""
import paddle.nn as nn
from paddleseg.cvlibs import manager

from paddleseg_lpsnet.models.heads.lpsnet import LPSNetHead
from paddleseg_lpsnet.models.layers import resize_to
from paddleseg_lpsnet.utils.checkpoint import load_model_pretrained

__all__ = ["LPSNetSeg"]


@manager.MODELS.add_component
class LPSNetSeg(nn.Layer):
    """LPS-Net for semantic segmentation.

    Args:
        num_classes (int): Number of classes.
        backbone (nn.Layer): A built LPS-Net backbone (e.g. LPSNetBackbone_M) in
            segmentation form (no class_num).
        align_corners (bool, optional): Align corners of the final upsampling.
            Default: True, as in the paper.
        pretrained (str, optional): A full segmentation checkpoint of this
            architecture; every tensor must load. Default: None.
    """

    def __init__(self, num_classes, backbone, align_corners=True, pretrained=None):
        super().__init__()
        if getattr(backbone, "class_num", None) is not None:
            raise ValueError("LPSNetSeg needs the backbone in segmentation form; "
                             f"got one built with class_num={backbone.class_num}.")
        self.backbone = backbone
        self.num_classes = num_classes
        self.align_corners = align_corners
        self.head = LPSNetHead(backbone.feat_channels, num_classes)
        if pretrained is not None:
            load_model_pretrained(self, pretrained)

    def forward_lowres(self, x):
        """Logits before the final upsampling: [N, num_classes, H*r0/16, W*r0/16].

        `forward` resizes them bilinearly (align_corners) to x's size; export uses
        this to take the argmax without building full-size logits.
        """
        return self.head(self.backbone(x))

    def forward(self, x):
        return [resize_to(self.forward_lowres(x), x, self.align_corners)]
