"""Reading back what ``neurodyn train`` wrote: ``metrics.npz`` (or ``metrics.csv`` where
only that was kept), one entry per rule label in evaluation order.

```python
from neurodyn.io.metrics import read_metrics
curves = read_metrics("out/mnist_all_rules")          # the folder, or the file itself
curves["bp"]["step"], curves["bp"]["test_accuracy"]   # numpy arrays, NaN where a rule has no value
```
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .errors import ModelError


def _locate(path) -> Path:
    path = Path(path)
    if path.is_dir():
        for name in ("metrics.npz", "metrics.csv"):
            if (path / name).is_file():
                return path / name
        raise ModelError(path, None, "no metrics.npz or metrics.csv here; give the output folder of neurodyn train")
    if not path.is_file():
        raise ModelError(path, None, "file not found; give the output folder of neurodyn train or its metrics file")
    return path


def _columns(file: Path) -> dict[str, np.ndarray]:
    if file.suffix == ".npz":
        try:
            with np.load(file, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as err:
            raise ModelError(file, None, f"not a readable metrics file ({err})") from None
    with open(file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "rule" not in rows[0]:
        raise ModelError(file, None, "no rows, or no 'rule' column: not a metrics file of neurodyn train")
    cols = {"rule": np.asarray([r["rule"] for r in rows])}
    for key in rows[0]:
        if key != "rule":
            cols[key] = np.asarray([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows])
    return cols


def read_metrics(path) -> dict[str, dict[str, np.ndarray]]:
    """``{rule label: {column: values}}`` from a training output folder or metrics file;
    every column of the file (``step``, ``train_loss``, ``test_loss``, angles, ...) as a
    float array in evaluation order."""
    cols = _columns(_locate(path))
    labels = cols.pop("rule").astype(str)
    return {label: {k: v[labels == label].astype(float) for k, v in cols.items()} for label in dict.fromkeys(labels)}


def metric_rows(path) -> dict[str, list[dict[str, float | None]]]:
    """The same as rows: ``{rule label: [{column: value or None}, ...]}``."""
    out = {}
    for label, cols in read_metrics(path).items():
        n = len(cols["step"])
        out[label] = [{k: (None if np.isnan(v[i]) else float(v[i])) for k, v in cols.items()} for i in range(n)]
        for row in out[label]:
            row["rule"] = label
    return out
