"""Every file pmsops writes or reads on an operator's behalf goes through here.

Why: pmsops often runs as root, in directories other users can write to (``/tmp``,
a shared CI workspace). Another local user can plant a symbolic link, a hard link,
a FIFO or a device where we are about to write (``--junit``, ``--save``, the
sandbox's env file) or read (``--env-file``). The rules:

* **Writes** never follow a link and never write into an existing inode: the text
  goes to a fresh temporary file in the same directory (``O_CREAT|O_EXCL|O_NOFOLLOW``,
  mode 0600), which then replaces the target with ``os.replace`` (a rename replaces
  the *directory entry*, so a link planted at the target is replaced, its target is
  untouched). An existing target that is not a regular file is refused (exit 2).
* **Logs** (appended across restarts) are opened with ``O_NOFOLLOW|O_NONBLOCK`` and
  must be a regular file owned by us; they are made 0600.
* **Private directories** (the sandbox's state) are created 0700, or accepted only
  when they are a real directory (not a link) owned by us that no one else can
  write, inside ancestors that no one else can rename them out of.
* **Reads** of operator-named files accept regular files only (a FIFO would hang,
  ``/dev/zero`` would eat memory, ``/proc`` files lie about their size) and read at
  most a fixed number of bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from pmsops.errors import UsageError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind(mode: int) -> str:
    """'a symbolic link', 'a FIFO', … for a non-regular ``st_mode`` (for one-line errors)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --- writing ----------------------------------------------------------------------------------------------


def write_bytes(path: str | os.PathLike[str], data: bytes, what: str = "file") -> Path:
    """Write ``data`` to ``path`` atomically, mode 0600, never through a link; returns the path.

    An existing symlink, FIFO, device, socket or directory at ``path`` is bad input
    (UsageError, exit 2) and is left as it is.
    """
    target = Path(path)
    try:
        existing = os.lstat(target)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise UsageError(f"cannot write {what} {target}: {_why(exc)}") from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise UsageError(f"refusing to write {what} {target}: it is {kind(existing.st_mode)} (only a regular file is replaced)")
    import tempfile

    try:
        fd, temporary = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write {what} {target}: {_why(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE_FILE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise UsageError(f"cannot write {what} {target}: {_why(exc)}") from None
    return target


def write_new(path: str | os.PathLike[str], data: bytes, what: str = "file", hint: str | None = None) -> Path:
    """Write ``data`` to a path that must not exist yet: never replaces, never follows a link.

    For files that are evidence (incident reports): a temporary file (``O_CREAT|O_EXCL|
    O_NOFOLLOW``, 0600, synced) is hard-linked into place, which fails if anything,
    a link included, is already there.
    """
    import secrets

    target = Path(path)
    temporary = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    except OSError as exc:
        raise UsageError(f"cannot write {what} in {target.parent}: {_why(exc)}", hint=hint) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, target, follow_symlinks=False)
        except FileExistsError:
            raise UsageError(f"{target} already exists ({what} is never overwritten)", hint=hint) from None
        except OSError as exc:
            raise UsageError(f"cannot write {what} {target}: {_why(exc)}", hint=hint) from None
    finally:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
    return target


def write_text(path: str | os.PathLike[str], text: str, what: str = "file") -> Path:
    """:func:`write_bytes` for UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"), what)


def open_append(path: str | os.PathLike[str], owner: int | None = None) -> int:
    """A log file opened for appending (file descriptor): created 0600, never through a link.

    An existing entry must be a regular file owned by us (or ``owner``); anything
    else raises UsageError. ``owner`` (uid) also chowns a new file, for logs a
    demoted server writes.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags, PRIVATE_FILE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(f"refusing to write log {path}: it is a symbolic link") from None
        raise UsageError(f"cannot write log {path}: {_why(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"refusing to write log {path}: it is {kind(info.st_mode)}")
        allowed = {os.geteuid()} | ({owner} if owner is not None else set())
        if info.st_uid not in allowed:
            raise UsageError(f"refusing to write log {path}: it belongs to uid {info.st_uid}, not to us")
        if owner is not None and info.st_uid != owner:
            os.fchown(fd, owner, -1)
        os.fchmod(fd, PRIVATE_FILE)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


# --- private directories ------------------------------------------------------------------------------------


def _check_ancestors(directory: Path, what: str = "sandbox directory") -> None:
    """Each ancestor is owned by root or us and, if others may write to it, sticky (they cannot rename our entry)."""
    me = os.geteuid()
    real = Path(os.path.realpath(directory))
    for ancestor in [real, *real.parents]:
        try:
            info = os.stat(ancestor)
        except OSError as exc:
            raise UsageError(f"cannot use {what}: {ancestor}: {_why(exc)}") from None
        if info.st_uid not in (0, me):
            raise UsageError(f"unsafe {what}: its parent {ancestor} belongs to uid {info.st_uid} (another user could replace it)")
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            raise UsageError(f"unsafe {what}: its parent {ancestor} is writable by other users and not sticky (mode {stat.S_IMODE(info.st_mode):o})")


def check_trusted_file(path: str | os.PathLike[str], what: str) -> None:
    """A file whose content decides what we run or read (a store of settings): the file links lead to is owned by us or
    root and writable by no one else, and so is every directory above it. Links may stay (as for other files pmsops
    reads); what they lead to is what is checked. Anything else is one line, exit 2."""
    real = Path(os.path.realpath(path))
    info = os.stat(real)
    if info.st_uid not in (0, os.geteuid()):
        raise UsageError(
            f"unsafe {what} {path}: it belongs to uid {info.st_uid}, not to you (uid {os.geteuid()}) or root",
            hint="another user could choose your env file: remove it, or set XDG_CONFIG_HOME to a directory of yours",
        )
    if info.st_mode & 0o022:
        raise UsageError(f"unsafe {what} {path}: other users can write to it (mode {stat.S_IMODE(info.st_mode):o})", hint=f"chmod 600 {real}")
    _check_ancestors(real.parent, what)


def check_private_directory(path: str | os.PathLike[str]) -> os.stat_result:
    """An existing directory we may keep secrets in: a real directory (lstat), ours, not writable by others."""
    directory = Path(path)
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        raise UsageError(f"sandbox directory {directory} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot use sandbox directory {directory}: {_why(exc)}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"unsafe sandbox directory {directory}: it is {kind(info.st_mode)}, not a directory")
    if info.st_uid != os.geteuid():
        raise UsageError(
            f"unsafe sandbox directory {directory}: it belongs to uid {info.st_uid}, not to you (uid {os.geteuid()}); remove it or pass --dir"
        )
    if info.st_mode & 0o022:
        raise UsageError(
            f"unsafe sandbox directory {directory}: other users can write to it (mode {stat.S_IMODE(info.st_mode):o}); remove it or pass --dir"
        )
    _check_ancestors(directory.parent)
    return info


def _open_directory(directory: Path) -> int:
    """A directory's descriptor, never through a link (O_NOFOLLOW|O_DIRECTORY); anything else is a UsageError."""
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        try:
            what = kind(os.lstat(directory).st_mode)
        except OSError:
            what = _why(exc)
        raise UsageError(f"unsafe directory {directory}: it is {what}, not a directory") from None


def private_directory(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` with mode 0700 (parents must exist), or accept a safe existing one.

    Returns True when this call created it (so the caller knows it may remove it).
    Never follows a link at ``path``; an unsafe existing entry is a UsageError.
    """
    directory = Path(path)
    if not directory.parent.is_dir():
        raise UsageError(f"cannot create sandbox directory {directory}: {directory.parent} does not exist")
    _check_ancestors(directory.parent)
    try:
        os.mkdir(directory, PRIVATE_DIR)
    except FileExistsError:
        check_private_directory(directory)
        return False
    except OSError as exc:
        raise UsageError(f"cannot create sandbox directory {directory}: {_why(exc)}") from None
    fd = _open_directory(directory)
    try:  # the umask may have taken bits away; never leave more than 0700
        os.fchmod(fd, PRIVATE_DIR)
    finally:
        os.close(fd)
    check_private_directory(directory)
    return True


def private_subdirectory(path: str | os.PathLike[str], owner: int | None = None) -> bool:
    """A 0700 directory inside a directory already checked with :func:`private_directory`.

    Returns True when created here. An existing entry must be a real directory owned
    by us (or ``owner``). ``owner`` chowns a new directory (for a demoted server).
    """
    directory = Path(path)
    created = True
    try:
        os.mkdir(directory, PRIVATE_DIR)
    except FileExistsError:
        created = False
    except OSError as exc:
        raise UsageError(f"cannot create {directory}: {_why(exc)}") from None
    fd = _open_directory(directory)
    try:
        info = os.fstat(fd)
        if info.st_uid not in {os.geteuid(), owner}:
            raise UsageError(f"unsafe directory {directory}: it belongs to uid {info.st_uid}")
        if created and owner is not None:
            os.fchown(fd, owner, -1)
        os.fchmod(fd, PRIVATE_DIR)
    finally:
        os.close(fd)
    return created


# --- reading ----------------------------------------------------------------------------------------------


def read_regular(path: str | os.PathLike[str], limit: int, what: str = "file") -> bytes:
    """At most ``limit`` bytes of a regular file, or UsageError at once.

    Refused without reading: FIFOs (would hang), devices (``/dev/zero`` never ends),
    directories, sockets, files larger than ``limit`` (a sparse 1 GB file is not
    read). Pseudo-files (``/proc/self/environ``) say their size is 0 but have
    content: refused too. A link to a regular file is followed (reading it gives
    nothing away that the path did not). ``FileNotFoundError`` and
    ``PermissionError`` propagate, for the caller's own wording.
    """
    target = Path(path)
    info = os.stat(target)  # refuse devices and FIFOs before opening them (opening may block or have effects)
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{what} is {kind(info.st_mode)}, not a regular file: {target}")
    fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)  # what we actually opened (the path may have changed since the stat)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{what} is {kind(info.st_mode)}, not a regular file: {target}")
        if info.st_size > limit:
            raise UsageError(f"{what} is too large ({info.st_size} bytes, at most {limit}): {target}")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > limit:
        raise UsageError(f"{what} is too large (more than {limit} bytes): {target}")
    if info.st_size == 0 and total:
        raise UsageError(f"{what} is a pseudo-file (it reports size 0 but has content, as /proc and /sys files do): {target}")
    return b"".join(chunks)


def tail_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The last ``limit`` bytes of a regular file (a log that may be huge): FIFOs and devices are refused at once,
    and so is a symbolic link (``O_NOFOLLOW``): a log's owner could point it at a file only root may read, whose
    contents would land in a bundle made to be shared."""
    target = Path(path)
    info = os.lstat(target)
    if stat.S_ISLNK(info.st_mode):
        raise UsageError(f"{target} is a symbolic link: pmsops reads a log only as the file itself (give the link's target if you trust it)")
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{target} is {kind(info.st_mode)}, not a regular file")
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a link between the check and the open
            raise UsageError(f"{target} is a symbolic link: pmsops reads a log only as the file itself") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{target} is not a regular file")
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, max(0, size - limit), os.SEEK_SET)
        chunks, total = [], 0
        while total < limit and (chunk := os.read(fd, min(1 << 20, limit - total))):
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def sha256_regular(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a regular file, streamed: a FIFO or device is refused at once instead of hanging or never ending.

    ``OSError`` (missing, permission) propagates for the caller's wording.
    """
    import hashlib

    target = Path(path)
    info = os.stat(target)
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{target} is {kind(info.st_mode)}, not a regular file")
    digest = hashlib.sha256()
    fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{target} is not a regular file")
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()
