"""Files written so that a crash never leaves a half-written one under the final name.

A directory is built under a hidden staging name (`.NAME.partial-XXXX`) and published
by a rename. Replacing an existing directory swaps the two atomically where the
kernel can (Linux renameat2 RENAME_EXCHANGE); elsewhere the old one is first moved
aside (`.NAME.old-XXXX`), and `recover_published` puts it back if a crash came
between the two renames. A directory is deleted by renaming it to a hidden name
first, so that a crash in the middle never leaves a half-deleted one under its name.
"""
import ctypes
import errno
import json
import os
import re
import shutil
import tempfile

__all__ = ["atomic_paddle_save", "atomic_write_text", "atomic_write_bytes", "atomic_write_json",
           "publish_dir", "staging_dir", "remove_dir", "recover_published"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_HIDDEN = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-[^.]+$")


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


def _exchange(a, b):
    """Swap paths a and b atomically (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


def publish_dir(staging, final):
    """Move a completely written directory to `final`, replacing any old one.

    At every moment `final` holds either its old complete content or the new complete
    content (after a crash between the two renames of the fallback, until
    recover_published runs, the old content is in `.NAME.old-XXXX`). The old directory
    is deleted only once the new one is in place.
    """
    parent = os.path.dirname(os.path.abspath(final))
    if os.path.exists(final) and _exchange(staging, final):
        _fsync_dir(parent)
        shutil.rmtree(staging, ignore_errors=True)  # now the old content
        return
    old = None
    if os.path.exists(final):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.old-", dir=parent)
        os.rmdir(old)
        os.replace(final, old)
    os.replace(staging, final)
    _fsync_dir(parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_dir(path):
    """Delete a directory: rename it to a hidden staging name, then delete that."""
    if not os.path.isdir(path):
        return
    trash = staging_dir(path)
    os.replace(path, trash)  # onto the new empty directory
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
    shutil.rmtree(trash, ignore_errors=True)


def recover_published(parent):
    """Clean up after a crash in `parent`: delete staging directories (incomplete, or old
    content being deleted); put back a moved-aside directory whose replacement never
    arrived, and delete it otherwise. Returns one line per action, for the log."""
    actions = []
    for entry in sorted(os.listdir(parent)) if os.path.isdir(parent) else []:
        match = _HIDDEN.match(entry)
        path = os.path.join(parent, entry)
        if match is None or not os.path.isdir(path):
            continue
        final = os.path.join(parent, match.group("name"))
        if match.group("kind") == "old" and not os.path.exists(final):
            os.replace(path, final)
            actions.append(f"restored {final} (a crash came while it was being replaced)")
        else:
            shutil.rmtree(path, ignore_errors=True)
            actions.append(f"deleted {path} (left by an interrupted save)")
    if actions:
        _fsync_dir(parent)
    return actions
