"""Prediction at a reduced input scale, compared at full resolution.

PMSDSEN's published protocol (the authors' Demo/eval.py): the normalized full image
is resized by 0.5 (bilinear, align_corners=True), predicted, and the logits are
resized back to the image size the same way before the argmax.
"""
import paddle.nn.functional as F

__all__ = ["predict_rescaled"]


def predict_rescaled(model, image, scale=0.5, align_corners=True):
    """Main logits of `model` for `image` [N, C, H, W], predicted at `scale` x the size.

    The input is resized to (int(H * scale), int(W * scale)) (floor, as PyTorch's
    `scale_factor` resize), and the logits back to (H, W), both bilinear with
    `align_corners`. Returns [N, num_classes, H, W].
    """
    if not scale > 0:
        raise ValueError(f"predict_rescaled: scale must be > 0, got {scale}.")
    h, w = image.shape[-2], image.shape[-1]
    size = [max(1, int(h * scale)), max(1, int(w * scale))]
    small = image if size == [h, w] else F.interpolate(image, size=size, mode="bilinear",
                                                       align_corners=align_corners)
    logits = model(small)
    logit = logits[0] if isinstance(logits, (list, tuple)) else logits
    if list(logit.shape[-2:]) == [h, w]:
        return logit
    return F.interpolate(logit, size=[h, w], mode="bilinear", align_corners=align_corners)
