"""Files written so that a crash never leaves a half-written one under the final name."""
import os
import tempfile

__all__ = ["atomic_paddle_save", "atomic_write_text"]


def _atomic(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_paddle_save(obj, path):
    """paddle.save to a temporary file in the same directory, then rename."""
    import paddle
    _atomic(path, lambda tmp: paddle.save(obj, tmp))


def atomic_write_text(text, path):
    """Write text to a temporary file in the same directory, then rename."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    _atomic(path, write)
