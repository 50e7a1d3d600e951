"""A user's circuit as a pip-installed plugin (tests/plugin_example): once installed, its
kind is listed by ``neurodyn list`` and simulated from a model file, and the fixed point
and spectrum are those of its equations; a plugin that fails to import is a warning, not
a crash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent

MODEL = """
name = "leaky"
[circuit]
kind = "leaky_integrator"
sizes = [3, 2]
tau = 4.0
[arrays]
W = { values = [[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]] }
x = { values = [[1.0, 0.0, 2.0], [0.5, -1.0, 1.0]] }
[simulation]
t1 = 400.0
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """tests/plugin_example installed with pip (into a folder of its own, put on PYTHONPATH)."""
    tmp = tmp_path_factory.mktemp("plugin")
    shutil.copytree(HERE / "plugin_example", tmp / "src")
    target = tmp / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(tmp / "src")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return target


def _neurodyn(argv, site, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "neurodyn", *map(str, argv)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # pip installs the package into a folder (12 s); .ci/run runs it
def test_an_installed_plugin_kind_is_listed_and_simulated_from_a_model_file(site, tmp_path):
    listed = _neurodyn(["list"], site, tmp_path)
    assert listed.returncode == 0 and "leaky_integrator: leaky integrator" in listed.stdout, listed.stderr
    (tmp_path / "leaky.toml").write_text(MODEL)
    res = _neurodyn(["simulate", "leaky.toml", "--out", "out", "--no-plot"], site, tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["kind"] == "leaky_integrator" and summary["converged"]
    assert summary["spectral_abscissa"] == pytest.approx(-1 / 4.0, rel=1e-9)  # Jacobian -I / tau
    W = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
    x = np.array([[1.0, 0.0, 2.0], [0.5, -1.0, 1.0]])
    np.testing.assert_allclose(np.load(tmp_path / "out" / "fixed_point.npz")["h"], x @ W.T, rtol=1e-10)  # h* = W x
    # its options are validated like neurodyn's own
    (tmp_path / "bad.toml").write_text(MODEL.replace("tau = 4.0", "tau = -1.0"))
    bad = _neurodyn(["simulate", "bad.toml", "--out", "bad"], site, tmp_path)
    assert bad.returncode == 2 and "[circuit].tau" in bad.stderr and bad.stderr.count("\n") == 1


def test_without_the_plugin_the_kind_is_unknown(tmp_path):
    (tmp_path / "leaky.toml").write_text(MODEL)
    res = subprocess.run([sys.executable, "-m", "neurodyn", "check", "leaky.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "unknown circuit kind 'leaky_integrator'" in res.stderr


def test_a_broken_plugin_is_a_warning_naming_it(tmp_path):
    site = tmp_path / "site"
    dist = site / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[neurodyn.circuits]\nbroken = no_such_module_anywhere\n")
    res = _neurodyn(["list"], site, tmp_path)
    assert res.returncode == 0 and "dynamic_inversion:" in res.stdout
    assert "plugin 'broken'" in res.stderr and "no_such_module_anywhere" in res.stderr
