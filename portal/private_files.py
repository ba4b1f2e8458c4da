"""The instance folder and what it holds are the service user's alone.

It holds the keys (config.py: the secret key, the data key, the audit key), the SQLite
database with its -wal and -shm files, the audit checkpoints and the demo credentials:
patient data and what unlocks it. Anything readable by other local users leaks all of it,
so the folder is created 0700 and each file 0600 *when it is created* (a chmod afterwards
would leave a window in which another user could open it and keep the descriptor).

SQLite creates a database's -wal and -shm files with the database file's own mode, so the
database file is created here, empty and private, before SQLite first opens it.

Files that already exist are not changed: an operator may have widened them on purpose (a
backup group), and silently undoing that could break their backups. Instead every start-up
checks the folder and logs a warning naming each path that is wider, its mode and the
command that makes it private.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# Bits that let anyone but the owner read, write or enter.
_OTHERS = 0o077
# An instance folder holds a handful of files; stop looking after this many entries.
_MAX_ENTRIES_CHECKED = 1000


def make_private_folder(path: str | os.PathLike) -> Path:
    """Create the folder (and its parents) if missing; a folder created here is 0700."""
    folder = Path(path)
    if not folder.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        # exist_ok: another process (a second gunicorn worker) may have made it first.
        folder.mkdir(mode=PRIVATE_FOLDER_MODE, exist_ok=True)
    return folder


def create_private_file(path: str | os.PathLike) -> None:
    """Create an empty file 0600 if it does not exist yet; an existing one is left alone."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite database URL, or None (another database, or one in memory)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_private_database(database_url: str) -> None:
    """Create a SQLite database's file 0600 before SQLite does (its -wal and -shm files
    then get the same mode). Nothing happens for other databases, or if the folder the
    file would go in does not exist (SQLite reports that itself, more clearly)."""
    path = sqlite_file(database_url)
    if path is not None and path.parent.is_dir():
        create_private_file(path)


def wider_than_private(paths: list[Path]) -> list[tuple[Path, int]]:
    """(path, mode) of each path, and of everything inside each folder among them, that
    another local user could read, write or enter."""
    found: list[tuple[Path, int]] = []
    seen = 0
    for top in paths:
        for path in _walk(top):
            seen += 1
            if seen > _MAX_ENTRIES_CHECKED:
                return found
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
            except OSError:
                continue  # gone meanwhile (a -shm file), or a dangling link
            if mode & _OTHERS:
                found.append((path, mode))
    return found


def _walk(top: Path):
    if not top.exists():
        return
    yield top
    if top.is_dir() and not top.is_symlink():
        for folder, folders, files in os.walk(top):
            folders.sort()
            for name in sorted(folders) + sorted(files):
                yield Path(folder) / name


def warn_about_wide_permissions(
    logger: logging.Logger, instance_path: str, database_url: str, extra: list[Path] = ()
) -> list[tuple[Path, int]]:
    """Log a warning for each path of the instance (and of the SQLite database and other
    private files kept outside it) that is wider than 0700 / 0600; return them."""
    paths = [Path(instance_path)]
    database = sqlite_file(database_url)
    if database is not None:
        paths += [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    paths += list(extra)
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    outside = [p for p in unique[1:] if not p.is_relative_to(unique[0])]
    found = wider_than_private([unique[0], *outside])
    for path, mode in found:
        wanted = PRIVATE_FOLDER_MODE if path.is_dir() else PRIVATE_FILE_MODE
        logger.warning(
            "%s is open to other local users (mode %s); it holds keys or patient data and "
            "should be %s: chmod %s %s",
            path,
            oct(mode),
            oct(wanted),
            format(wanted, "o"),
            path,
        )
    return found
