"""Plot helpers of the reproductions; the metrics themselves are read by the package
(:func:`neurodyn.io.metrics.metric_rows`)."""

from neurodyn.io.metrics import metric_rows


# Line styles of the rules every reproduction plots (the figures add their own rules)
BASELINE_STYLE = {
    "bp": dict(color="k", lw=2.0, label="BP"),
    "pbp": dict(color="0.55", lw=2.0, label="PBP"),
    "fa_r": dict(color="tab:green", lw=1.5, label="FA (U(-0.5, 0.5))"),
}


def load(folder) -> dict[str, list[dict]]:
    """``{rule label: [row, ...]}`` in evaluation order (values float, None where absent)."""
    return metric_rows(folder)


def value(r, key):
    """The float in column ``key`` of row ``r``, or None where it is empty or absent."""
    return r.get(key)


def series(rows, key, per: float = 1.0):
    """``(steps / per, values)`` of the rows that have ``key`` (e.g. per = samples per epoch)."""
    pts = [(int(r["step"]) / per, value(r, key)) for r in rows if value(r, key) is not None]
    return zip(*pts) if pts else ((), ())
