"""Class ids of bilinearly upsampled logits without building the full-resolution logits.

A segmentation model's last step at deployment is `argmax(upsample(logits))`: the
logits ([N, C, h, w], 1/16 of the image for LPS-Net) are resized bilinearly to the
image and the class of the largest one is taken per pixel. Done literally, that
writes and reads N*C*H*W floats (19 x 1024 x 2048 = 160 MB for Cityscapes), which on
a CPU costs a quarter of LPS-Net-M's convolutions (benchmarks/NOTES.md).

`sparse_upsampled_argmax` computes the same labels with far less work. Bilinear
resizing is separable: resize along W first (cheap: h rows only), then each output
row y is the blend (1 - t) * P + t * Q of two adjacent resized rows P = row i0(y),
Q = row i0(y) + 1 (t in [0, 1]). Per (row pair, column):

1. if argmax(P) == argmax(Q) == a, every blend has argmax a (a convex combination
   keeps the largest entry largest; with the first-index rule for ties, too): the
   output rows of the pair copy a -- most places, inside regions;
2. otherwise, with a = argmax(P) and b = argmax(Q), the blend's argmax is a up to
   the t* where a's and b's lines cross and b after it, unless a third class beats
   both at t* (the gap between any class's line and the upper envelope of a's and
   b's is concave on [0, 1] and <= 0 at both ends, so its maximum is at t*). So one
   evaluation at t* per boundary place decides all of its output rows;
3. the rare places where a third class wins somewhere are blended in full for every
   output row (one batched [R, 2] x [2, C] matmul) and written over.

The full-resolution work is a few gathers and elementwise ops on int32 / float32
[N, H, W] maps instead of C-channel float maps. The result equals
`argmax(resize(logits))` up to float rounding at rows within rounding of a crossing
(the test suite checks agreement with the dense form). Every op is a plain Paddle
op that paddle2onnx converts (Resize, ArgMax, Gather, GatherElements, NonZero,
ScatterND, MatMul, Where), so the Paddle and ONNX exports both carry it, with
static or dynamic input sizes. Which of the equivalent ONNX forms is used follows
onnxruntime's CPU costs (benchmarks/NOTES.md, sections 2, 3 and 9).
"""
import paddle
import paddle.nn.functional as F

__all__ = ["sparse_upsampled_argmax", "dense_upsampled_argmax", "source_rows", "argmax_int32"]


def argmax_int32(x, axis):
    """int32 index of the largest entry along `axis` (the first one on ties)."""
    if paddle.in_dynamic_mode() or paddle.framework.in_pir_mode():
        return paddle.argmax(x, axis=axis, dtype="int32")
    # Legacy static graph (FLAGS_enable_pir_api=0): Paddle 3.3's paddle.argmax only
    # accepts PIR values there; top-1 of topk is the same index.
    return paddle.topk(x, k=1, axis=axis)[1].squeeze(axis).astype("int32")


def dense_upsampled_argmax(logit, size, align_corners=True):
    """Reference: int32 [N, H, W] argmax over C of `logit` [N, C, h, w] resized to `size`."""
    up = F.interpolate(logit, size=size, mode="bilinear", align_corners=align_corners)  # [N, C, H, W]
    return argmax_int32(up, axis=1)


def _scalar(v):
    """A python int as is; a one-element tensor as a 0-D tensor (ONNX Range wants 0-D bounds)."""
    return v if isinstance(v, int) else v.reshape([])


def _as_int64(v):
    """An int64 [1] tensor of a python int or a shape tensor.

    Index arithmetic multiplies int64 tensors by tensors, never by python ints:
    Paddle Inference's oneDNN passes fuse `scale` ops (x * int) into neighbouring
    elementwise ops and get int64 results wrong (seen with Paddle 3.3.1).
    """
    return paddle.full([1], v, dtype="int64") if isinstance(v, int) else _scalar(v).astype("int64").reshape([1])


def _as_float(v):
    """A float32 scalar tensor from a python int or an int shape tensor."""
    return paddle.to_tensor(float(v), dtype="float32") if isinstance(v, int) else _scalar(v).astype("float32")


def source_rows(out_size, in_size, align_corners=True):
    """(i0 int64 [out], t float32 [out]): output row y blends input rows i0, i0+1 with weight t.

    The source coordinate follows Paddle's bilinear_interp (align_mode 0):
    y * (in-1)/(out-1) with align_corners, else max((y+0.5) * in/out - 0.5, 0).
    i0 is clamped to [0, in-2] (0 when in == 1) and t to [0, 1], so the last rows
    blend row in-2 with row in-1 at t = 1 instead of reading past the end.
    """
    n_out, n_in = _as_float(out_size), _as_float(in_size)
    y = paddle.arange(_scalar(out_size), dtype="float32")
    if align_corners:
        src = y * ((n_in - 1) / paddle.clip(n_out - 1, min=1))
    else:
        src = paddle.clip((y + 0.5) * (n_in / n_out) - 0.5, min=0)
    i0 = paddle.minimum(paddle.floor(src), paddle.clip(n_in - 2, min=0))
    t = paddle.clip(src - i0, 0, 1)
    return i0.astype("int64"), t


def _pair_rows(i0, num_pairs):
    """(first, count) int64 [num_pairs]: the output rows of row pair p are first[p] .. first[p]+count[p]-1."""
    pairs = paddle.arange(_scalar(num_pairs), dtype="int64").unsqueeze(1)  # [P, 1]
    rows = i0.unsqueeze(0)  # [1, H]
    first = paddle.sum((rows < pairs).astype("int64"), axis=1)
    count = paddle.sum((rows == pairs).astype("int64"), axis=1)
    return first, count


def _take(values, index):
    """values[index] for a 1-D `values` and int64 `index`.

    Exported as ONNX GatherElements: onnxruntime's Gather copies one element per
    index about eight times slower (benchmarks/onnx_op_costs.py: 205 vs 27 us for 22k
    indices).
    """
    return paddle.take_along_axis(values, index, axis=0)


def _crossings(top, bottom, up, down):
    """Where the blend of two rows switches class, for places whose rows disagree.

    `top`, `bottom` [K, C] are the two rows' logits, `up`, `down` [K] their argmax.
    Along t in [0, 1], (1 - t) * top + t * bottom is `up` before
    t* = (top[up] - top[down]) / ((top[up] - top[down]) + (bottom[down] - bottom[up]))
    and `down` after it -- unless a third class beats both at t* (the gap to the
    upper envelope of `up` and `down` is concave and <= 0 at t = 0 and 1, so its
    maximum is at t*). Returns (t* float32 [K], whether only `up` and `down` win [K]).
    """
    # Entries are picked from the flattened [K, C] tensors (index k * C + class): a
    # per-row take_along_axis would broadcast its index to [K, C] first.
    classes = _as_int64(top.shape[1] if top.shape[1] > 0 else paddle.shape(top)[1])
    row = paddle.arange(_scalar(paddle.shape(top)[0]), dtype="int64") * classes
    up, down = row + up.astype("int64"), row + down.astype("int64")
    top_flat, bottom_flat = top.flatten(), bottom.flatten()
    gap_top = _take(top_flat, up) - _take(top_flat, down)
    gap_bottom = _take(bottom_flat, down) - _take(bottom_flat, up)  # both >= 0
    crossing = paddle.clip(gap_top / paddle.clip(gap_top + gap_bottom, min=1e-30), 0, 1)  # [K]
    at_crossing = (top + crossing.unsqueeze(1) * (bottom - top)).flatten()  # [K * C]
    pair_best = paddle.maximum(_take(at_crossing, up), _take(at_crossing, down))
    return crossing, paddle.max(at_crossing.reshape(paddle.shape(top)), axis=1) <= pair_best


def _blend_every_row(labels, top, bottom, n, pair, x, first, count, t, out_h, out_w):
    """Write into labels [N, H, W] the argmax of every output row of the given places, blended in full."""
    one = _as_int64(1)
    # Every place is blended for R rows (the most any pair has); a pair with fewer
    # repeats its last row, which writes the same label twice.
    most = paddle.max(paddle.concat([count, paddle.ones([1], "int64")])).reshape([])
    step = paddle.arange(most, dtype="int64").unsqueeze(0)  # [1, R]
    rows = _take(first, pair).unsqueeze(1) + paddle.minimum(step, _take(count, pair).unsqueeze(1) - one)
    weight = _take(t, rows.flatten()).reshape(paddle.shape(rows))  # [K, R]
    blend = paddle.matmul(paddle.stack([1 - weight, weight], axis=-1),  # [K, R, 2]
                          paddle.stack([top, bottom], axis=1))  # [K, 2, C] -> [K, R, C]
    width = _as_int64(out_w)
    flat = (n.unsqueeze(1) * (_as_int64(out_h) * width) + rows * width + x.unsqueeze(1)).flatten()  # [K*R]
    merged = paddle.scatter(labels.flatten(), flat, argmax_int32(blend, axis=2).flatten(), overwrite=True)
    return merged.reshape(paddle.shape(labels))


def sparse_upsampled_argmax(logit, size, align_corners=True):
    """int32 [N, H, W] class ids of `logit` [N, C, h, w] bilinearly resized to `size` (H, W).

    Same labels as `dense_upsampled_argmax` (see the module docstring), with work
    proportional to the class boundaries. `size` entries may be python ints or
    int tensors (dynamic shapes in a static graph).
    """
    out_h, out_w = size
    in_h = logit.shape[2] if isinstance(logit.shape[2], int) and logit.shape[2] > 0 else paddle.shape(logit)[2]
    wide = F.interpolate(logit, size=[in_h, out_w], mode="bilinear", align_corners=align_corners)  # [N, C, h, W]
    # Channels last, one row of C logits per (n, row, column): the argmax reads
    # contiguous rows, and the boundary places gather them. (onnxruntime runs the
    # resize in its blocked NCHWc layout and this transpose as the reorder out of
    # it; resizing a channels-last tensor instead measured slower.)
    pixels = wide.transpose([0, 2, 3, 1]).flatten(0, 2)  # [N * h * W, C]
    row_labels = argmax_int32(pixels, axis=1).reshape([-1, in_h, out_w])  # [N, h, W]
    rows_in = paddle.shape(row_labels)[1]
    i0, t = source_rows(out_h, in_h, align_corners)  # [H]
    first, count = _pair_rows(i0, rows_in - 1)  # [h-1]

    # Places where the two rows of a pair disagree, in pairs that output rows use
    # (when shrinking, some pairs are skipped).
    differs = (row_labels[:, :-1] != row_labels[:, 1:]) & (count > 0).reshape([1, -1, 1])  # [N, h-1, W]
    places = paddle.nonzero(differs)  # [K, 3]: (n, pair, x)
    n, pair, x = places[:, 0], places[:, 1], places[:, 2]
    # Flat positions in [N, h, W] of each place's upper row (its lower row is `width`
    # further): rows of the flattened maps are gathered by them, not by (n, pair, x)
    # triples (onnxruntime's GatherND is several times slower).
    width = _as_int64(out_w)
    cells = (n * _as_int64(rows_in) + pair) * width + x  # [K]
    below = cells + width
    top, bottom = paddle.gather(pixels, cells), paddle.gather(pixels, below)  # [K, C]
    flat_labels = row_labels.flatten()
    crossing, two_class = _crossings(top, bottom, _take(flat_labels, cells), _take(flat_labels, below))

    # Each output pixel takes its top row's label before the crossing and its bottom
    # row's after it; rows that agree (and the extra last row) never cross (t* = 2),
    # nor do the rows of places where a third class wins between the two rows (rare):
    # those take their top row's label, overwritten with every row blended in full.
    never = paddle.full([1], 2.0, dtype="float32")
    switch = paddle.scatter(paddle.full(paddle.shape(row_labels), 2.0, dtype="float32").flatten(), cells,
                            paddle.where(two_class, crossing, never), overwrite=True)
    switch = paddle.gather(switch.reshape(paddle.shape(row_labels)), i0, axis=1)  # [N, H, W]
    rare = paddle.nonzero(paddle.logical_not(two_class)).flatten()
    upper = _blend_every_row(paddle.gather(row_labels, i0, axis=1), paddle.gather(top, rare),
                             paddle.gather(bottom, rare), _take(n, rare), _take(pair, rare), _take(x, rare),
                             first, count, t, out_h, out_w)  # [N, H, W]
    step_down = paddle.concat([row_labels[:, 1:], row_labels[:, -1:]], axis=1) - row_labels  # [N, h, W]
    after = (t.reshape([1, -1, 1]) > switch).astype("int32")
    # The last op writes the output: an elementwise one, not a reshape (which
    # onnxruntime would run as a copy of the whole label map).
    return upper + after * paddle.gather(step_down, i0, axis=1)
