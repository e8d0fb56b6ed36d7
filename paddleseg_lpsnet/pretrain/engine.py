"""Running PaddleClas's own Engine, when a PaddleClas source tree is importable.

The paddleclas wheel has no `ppcls` package; a clone of PaddleClas on PYTHONPATH
(or installed from source) has `ppcls.engine.engine.Engine`. Then `lpsnet pretrain`
registers our architectures in `ppcls.arch` and runs that Engine exactly as
PaddleClas's tools/train.py does.
"""
import importlib.util

from paddleseg_lpsnet.errors import LPSNetError

__all__ = ["ppcls_source_available", "run_ppcls_engine"]


def ppcls_source_available():
    """True if a PaddleClas source tree (package `ppcls`) is importable.

    Raises LPSNetError if `ppcls` is there but its Engine cannot be imported.
    """
    spec = importlib.util.find_spec("ppcls")
    if spec is None:
        return False
    try:
        from ppcls.engine.engine import Engine  # noqa: F401
    except Exception as exc:
        where = list(spec.submodule_search_locations or [spec.origin])
        raise LPSNetError(f"A PaddleClas source tree is importable ({where[0]}) but its Engine is "
                          f"not: {type(exc).__name__}: {exc}. Fix that tree, or pass --engine lpsnet "
                          "to use paddleseg-lpsnet's trainer.") from exc
    return True


def run_ppcls_engine(config_path, overrides):
    """Train with PaddleClas's Engine; returns nothing (it writes Global.output_dir)."""
    import ppcls.arch
    from ppcls.engine.engine import Engine

    from paddleseg_lpsnet.pretrain.archs import register_ppcls_archs
    from paddleseg_lpsnet.pretrain.config import load_ppcls_config

    register_ppcls_archs(ppcls.arch)
    config = load_ppcls_config(config_path, overrides)
    config["profiler_options"] = None  # tools/train.py's -p, read by the train loop
    Engine(config, mode="train").train()
