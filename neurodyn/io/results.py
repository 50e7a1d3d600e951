"""Result files, written atomically: everything goes to a temporary folder beside the
output folder and is moved in only once every file is complete."""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .errors import ModelError


#: formats of the figures (``--format``); matplotlib picks the writer from the suffix
FIGURE_FORMATS = ("png", "pdf", "svg")


def _in_format(name: str, figure_format: str) -> str:
    """A figure's file name (``name.png`` by convention) in ``figure_format``."""
    return name[: -len("png")] + figure_format if name.endswith(".png") else name


def write_outputs(
    out_dir: Path, writers: dict[str, Callable[[Path], None]], stale: Iterable[str] = (), figure_format: str = "png"
) -> list[Path]:
    """Run each ``writer(path)`` into a temporary folder, then move the files into
    ``out_dir``; remove ``stale`` files of an earlier run that this run does not write.
    Figures are named ``*.png`` by the callers and written in ``figure_format`` (one of
    :data:`FIGURE_FORMATS`); a stale figure is removed in every format."""
    if figure_format not in FIGURE_FORMATS:
        raise ValueError(f"figure format must be one of {', '.join(FIGURE_FORMATS)}, not {figure_format!r}")
    writers = {_in_format(name, figure_format): w for name, w in writers.items()}
    stale = {_in_format(name, f) for name in stale for f in FIGURE_FORMATS}
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        for name, writer in writers.items():
            writer(tmp / name)
        out_dir.mkdir(exist_ok=True)
        for name in stale - set(writers):
            (out_dir / name).unlink(missing_ok=True)
        for name in writers:
            os.replace(tmp / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out_dir / name for name in writers]


def folder_name(name: str) -> str:
    """A run's ``name`` as one folder name, never a path: characters other than letters,
    digits and ``._+-`` become ``_``, leading dots go (no ``..``, no hidden folder), at most
    100 characters; ``run`` if nothing is left."""
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(name)).lstrip(".")[:100].rstrip(".")
    return safe or "run"


def check_out_dir(out: Path) -> None:
    """Fail before any work unless results can be written to ``out``: every existing
    ancestor a folder, the folder creatable and writable (tried by writing a file, which
    also catches read-only and pseudo file systems). :func:`hold` then takes the folder."""
    out = Path(out)
    for a in [out, *out.parents]:
        if a.exists():
            if not a.is_dir():
                raise ModelError(out, None, f"{a} is a file, not a folder; choose another output folder (--out)")
            break
    created = [a for a in reversed([out.parent, *out.parent.parents]) if not a.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            (probe / "probe").write_bytes(b"0")
            if out.exists():
                (out / f".{probe.name}").write_bytes(b"0")
                (out / f".{probe.name}").unlink()
        finally:
            shutil.rmtree(probe, ignore_errors=True)
    except OSError as err:
        for a in reversed(created):
            with contextlib.suppress(OSError):
                a.rmdir()
        raise ModelError(out, None, f"cannot write results here ({err.strerror or err}); choose another output folder (--out)") from None


#: the file in an output folder that a command holds while it writes there (:func:`hold`)
LOCK_NAME = ".neurodyn.lock"


@contextlib.contextmanager
def hold(out: Path):
    """Hold the output folder ``out`` for one command: ``out/.neurodyn.lock`` locked
    (``flock``, released by the system however the process ends) while the command writes
    there, removed after. A second command into the same folder meanwhile (a sweep started
    twice, or resumed while it runs) is an input error instead of two processes writing
    and tidying the same files. The folder is made if missing and removed again if the
    command left it empty. Where the system cannot lock files (no ``fcntl``, some network
    file systems) the folder is used unlocked."""
    out = Path(out)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fh = _locked(path, out)
    for scrap in out.parent.glob(f".{glob.escape(out.name)}.tmp-*"):  # what a killed run left (write_outputs)
        shutil.rmtree(scrap, ignore_errors=True)
    try:
        yield
    finally:
        if fh is not None:
            path.unlink(missing_ok=True)
            fh.close()
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def _locked(path: Path, out: Path):
    """The lock file ``path``, open and locked (None where locking is not available)."""
    try:
        import fcntl
    except ImportError:
        return None
    while True:
        try:
            fh = open(path, "a")
        except OSError as err:  # a folder of that name, a file of another user
            raise ModelError(out, None, f"cannot open {path.name} here ({err.strerror or err}); remove it, or choose another output folder (--out)") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise ModelError(out, None, "another neurodyn command is writing to this folder now; wait for it to finish, or choose another output folder (--out)") from None
        except OSError:
            fh.close()
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino:
                return fh
        except FileNotFoundError:
            pass
        fh.close()  # the holder removed the file between our open and our lock: lock the new one


def shown_path(path: Path) -> str:
    """A file's path as results record it: relative to the working folder where it lies
    below it (results committed to a repository then name no machine's folders)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def jsonable(obj):
    """Plain JSON types; non-finite floats become null (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def json_writer(data) -> Callable[[Path], None]:
    def write(path: Path):
        path.write_text(json.dumps(jsonable(data), indent=2) + "\n")

    return write


def npz_writer(arrays: dict[str, np.ndarray]) -> Callable[[Path], None]:
    def write(path: Path):
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    return write
