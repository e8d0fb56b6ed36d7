"""lpsnet data <action>: dataset preparation, one module per action.

Each action module provides `add_arguments(parser)` and `run(args) -> int`.
"""
import importlib

# action -> (module, one-line help)
ACTIONS = {
    "synth": ("paddleseg_lpsnet.tools.data.synth",
              "generate street scenes in the Cityscapes layout (demos, smoke tests)"),
    "prepare-cityscapes": ("paddleseg_lpsnet.tools.data.prepare_cityscapes",
                           "build labelTrainIds and file lists for a Cityscapes download"),
    "check": ("paddleseg_lpsnet.tools.data.check",
              "scan a config's train/val data and report every problem"),
    "synth-imagenet": ("paddleseg_lpsnet.tools.data.synth_imagenet",
                       "write a small generated ImageNet-style set (PaddleClas file lists)"),
    "class-weights": ("paddleseg_lpsnet.tools.data.class_weights",
                      "ENet class weights from a config's training labels, as a loss YAML snippet"),
}


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    for name, (module_name, help_) in ACTIONS.items():
        action_parser = sub.add_parser(name, help=help_, description=help_)
        importlib.import_module(module_name).add_arguments(action_parser)


def run(args):
    return importlib.import_module(ACTIONS[args.action][0]).run(args)
