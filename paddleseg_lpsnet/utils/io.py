"""Files written so that a crash never leaves a half-written one under the final name."""
import json
import os
import shutil
import tempfile

__all__ = ["atomic_paddle_save", "atomic_write_text", "atomic_write_bytes", "atomic_write_json",
           "publish_dir", "staging_dir"]


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(directory)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_paddle_save(obj, path):
    """paddle.save to a temporary file in the same directory, then rename."""
    import paddle
    _atomic(path, lambda tmp: paddle.save(obj, tmp))


def atomic_write_bytes(data, path):
    """Write bytes to a temporary file in the same directory, then rename."""
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    _atomic(path, write)


def atomic_write_text(text, path):
    """Write text to a temporary file in the same directory, then rename."""
    atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj, path):
    """Write JSON (indented, keys in insertion order) atomically."""
    atomic_write_text(json.dumps(obj, indent=2) + "\n", path)


def staging_dir(final):
    """A new empty directory beside `final` for building its contents (see publish_dir)."""
    parent = os.path.dirname(os.path.abspath(final))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.partial-", dir=parent)
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private
    return staging


def publish_dir(staging, final):
    """Move a completely written directory to `final`, replacing any old one.

    `final` either keeps its old complete content or gets the new complete content:
    the old directory is moved aside first and deleted only once the new one is in
    place.
    """
    parent = os.path.dirname(os.path.abspath(final))
    old = None
    if os.path.exists(final):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.old-", dir=parent)
        os.rmdir(old)
        os.replace(final, old)
    os.replace(staging, final)
    _fsync_dir(parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
