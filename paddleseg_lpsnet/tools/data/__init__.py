"""lpsnet data <action>: generate, prepare and check datasets.

Each action is a module of this package with `add_arguments(parser)` and
`run(args) -> int`, like the other subcommands, and one line in ACTIONS. Action
modules keep heavy imports inside run(): all of them are imported to build the
parser.
"""
import importlib

# action -> (module, one-line help), in the order `lpsnet data -h` lists them.
ACTIONS = {
    "synth": ("paddleseg_lpsnet.tools.data.synth",
              "generate street scenes in the Cityscapes layout (demos, smoke tests)"),
    "prepare-cityscapes": ("paddleseg_lpsnet.tools.data.prepare_cityscapes",
                           "build labelTrainIds and file lists for a Cityscapes download"),
    "check": ("paddleseg_lpsnet.tools.data.check",
              "scan a config's train/val data and report every problem"),
}


def add_arguments(parser):
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    for name, (module_name, help_) in ACTIONS.items():
        module = importlib.import_module(module_name)
        sub = actions.add_parser(name, help=help_, description=help_)
        module.add_arguments(sub)
        sub.set_defaults(_action_run=module.run)


def run(args):
    return args._action_run(args)
