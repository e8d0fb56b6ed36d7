"""The `lpsnet` CLI for the distributed tests: `python tests/dist_entry.py train ...`, alone
or under `python -m paddle.distributed.launch`.

It registers `DistTestPlainSegNet`, a segmentation model without batch norm (so that a
data-parallel run and a single-process run on the same global batch compute the same
gradients), and after training writes the parameters each rank holds to
$DIST_DUMP/rank<r>.pdparams. With DIST_NAN=<rank>:<step>, the loss of that rank is NaN
at that training step (1-based).
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _register():
    import paddle.nn as nn
    import paddle.nn.functional as F
    from paddleseg.cvlibs import manager

    @manager.MODELS.add_component
    class DistTestPlainSegNet(nn.Layer):
        """conv 3x3 / 2 -> ReLU -> conv 3x3 -> ReLU -> conv 1x1 -> bilinear to the input size."""

        def __init__(self, num_classes, channels=8):
            super().__init__()
            self.stem = nn.Conv2D(3, channels, 3, stride=2, padding=1)
            self.body = nn.Conv2D(channels, channels, 3, padding=1)
            self.cls = nn.Conv2D(channels, num_classes, 1)

        def forward(self, x):
            y = self.cls(F.relu(self.body(F.relu(self.stem(x)))))  # [N, K, H/2, W/2]
            return [F.interpolate(y, x.shape[2:], mode="bilinear", align_corners=False)]


def _dump_parameters_after_training():
    import paddle

    from paddleseg_lpsnet.core import train as train_mod
    run = train_mod.Trainer.run

    def run_and_dump(self):
        result = run(self)
        out = os.environ.get("DIST_DUMP")
        if out:
            os.makedirs(out, exist_ok=True)
            state = {k: v for k, v in self.model.state_dict().items()}
            paddle.save(state, os.path.join(out, f"rank{paddle.distributed.get_rank()}.pdparams"))
        return result
    train_mod.Trainer.run = run_and_dump


def _nan_on_one_rank(rank, step):
    import paddle

    from paddleseg_lpsnet.core.losses import LossComputer
    call = LossComputer.__call__
    calls = [0]

    def nan_once(self, model, logits_list, batch):
        out = call(self, model, logits_list, batch)
        calls[0] += 1
        if paddle.distributed.get_rank() == rank and calls[0] == step:
            out = out._replace(total=out.total * float("nan"))
        return out
    LossComputer.__call__ = nan_once


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    _register()
    _dump_parameters_after_training()
    if os.environ.get("DIST_NAN"):
        _nan_on_one_rank(*map(int, os.environ["DIST_NAN"].split(":")))
    from paddleseg_lpsnet.cli import main
    sys.exit(main(sys.argv[1:]))
