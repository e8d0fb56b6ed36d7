"""Run the `lpsnet` CLI with the file operations of its saves numbered, and optionally
freeze it (SIGSTOP) just before one of them, so that a test can `kill -9` it exactly
there: `python tests/fs_pause.py train --config ...` (the CLI's arguments).

Environment:
    FS_PAUSE_ROOT  only operations on paths under this directory count (the save_dir)
    FS_PAUSE_LOG   append "<n> <operation> <path>" for each counted operation, plus
                   " <- <source>" for a rename
    FS_PAUSE_AT    freeze before operation n, after writing its line to FS_PAUSE_MARK
    FS_PAUSE_MARK  the file the test waits for before it kills the process

A `paddle.save` it freezes at first writes half of its file, and an `rmtree` first
deletes one file, as a kill in the middle of them leaves things. Operations inside a
counted one (paddle.save's own open) are not counted.
"""
import builtins
import os
import shutil
import signal
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_real = {"open": builtins.open, "replace": os.replace, "remove": os.remove}
_state = {"n": 0, "depth": 0}


def _under_root(path):
    root = os.environ.get("FS_PAUSE_ROOT")
    if root is None or path is None or isinstance(path, int):
        return False
    path, root = os.path.abspath(os.fsdecode(path)), os.path.abspath(root)
    return path == root or path.startswith(root + os.sep)


def _pause(line):
    mark = os.environ["FS_PAUSE_MARK"]
    with _real["open"](mark + ".tmp", "w") as f:
        f.write(line + "\n")
    _real["replace"](mark + ".tmp", mark)
    os.kill(os.getpid(), signal.SIGSTOP)


def _half_save(real_save, obj, path, *args, **kwargs):
    real_save(obj, path, *args, **kwargs)
    with _real["open"](path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _half_rmtree(path):
    for directory, _, files in os.walk(path):
        if files:
            _real["remove"](os.path.join(directory, files[0]))
            return


def _counted(name, func, path_of, source_of=None):
    def wrapper(*args, **kwargs):
        path = path_of(*args, **kwargs)
        if _state["depth"] or not _under_root(path):
            return func(*args, **kwargs)
        _state["n"] += 1
        line = f"{_state['n']} {name} {os.fsdecode(path)}"
        if source_of is not None:
            line += f" <- {os.fsdecode(source_of(*args, **kwargs))}"
        log = os.environ.get("FS_PAUSE_LOG")
        if log:
            with _real["open"](log, "a") as f:
                f.write(line + "\n")
        if os.environ.get("FS_PAUSE_AT") == str(_state["n"]):
            if name == "paddle.save":
                _half_save(func, *args, **kwargs)
            elif name == "rmtree":
                _half_rmtree(path)
            _pause(line)
        _state["depth"] += 1
        try:
            return func(*args, **kwargs)
        finally:
            _state["depth"] -= 1
    return wrapper


def _first(*args, **kwargs):
    return args[0] if args else next(iter(kwargs.values()), None)


def _second(*args, **kwargs):
    return args[1] if len(args) > 1 else kwargs.get("path", kwargs.get("dst"))


def _written(*args, **kwargs):
    mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
    return _first(*args, **kwargs) if any(c in mode for c in "wax+") else None


def _in_dir(*args, **kwargs):
    directory, prefix = kwargs.get("dir"), kwargs.get("prefix", "")
    return None if directory is None else os.path.join(directory, prefix)


def install():
    import paddle

    from paddleseg_lpsnet.utils import io
    paddle.save = _counted("paddle.save", paddle.save, _second)
    builtins.open = _counted("open", builtins.open, _written)
    os.replace = _counted("replace", os.replace, _second, _first)
    os.rename = _counted("rename", os.rename, _second, _first)
    os.remove = _counted("remove", os.remove, _first)
    os.rmdir = _counted("rmdir", os.rmdir, _first)
    shutil.rmtree = _counted("rmtree", shutil.rmtree, _first)
    tempfile.mkdtemp = _counted("mkdtemp", tempfile.mkdtemp, _in_dir)
    tempfile.mkstemp = _counted("mkstemp", tempfile.mkstemp, _in_dir)
    io._exchange = _counted("exchange", io._exchange, _second, _first)


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    install()
    from paddleseg_lpsnet.cli import main
    sys.exit(main(sys.argv[1:]))
