"""lpsnet data ACTION: dataset utilities; each action is a module of this package
with `add_arguments(parser)` and `run(args) -> int`, listed in ACTIONS."""
import importlib

# action -> (module, one-line help)
ACTIONS = {
    "class-weights": ("paddleseg_lpsnet.tools.data.class_weights",
                      "ENet class weights from a config's training labels, as a loss YAML snippet"),
}


def add_arguments(parser):
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, (module_name, help_) in ACTIONS.items():
        sub = actions.add_parser(name, help=help_, description=help_)
        importlib.import_module(module_name).add_arguments(sub)


def run(args):
    return importlib.import_module(ACTIONS[args.action][0]).run(args)
