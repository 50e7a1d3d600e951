"""Result files, written atomically: everything goes to a temporary folder beside the
output folder and is moved in only once every file is complete."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np


def write_outputs(out_dir: Path, writers: dict[str, Callable[[Path], None]], stale: Iterable[str] = ()) -> list[Path]:
    """Run each ``writer(path)`` into a temporary folder, then move the files into
    ``out_dir``; remove ``stale`` files of an earlier run that this run does not write."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        for name, writer in writers.items():
            writer(tmp / name)
        out_dir.mkdir(exist_ok=True)
        for name in stale:
            if name not in writers:
                (out_dir / name).unlink(missing_ok=True)
        for name in writers:
            os.replace(tmp / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out_dir / name for name in writers]


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
