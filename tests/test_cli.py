"""The ``neurodyn`` command (its contract: exit codes, messages, outputs).

Most runs call ``neurodyn.cli.main(argv)`` in-process (one JIT compile per circuit shape
for the whole file); a few go through ``python -m neurodyn`` in a subprocess to check the
real exit codes and stderr end to end. Exit codes: 0 success, 2 invalid input (one line on
stderr naming file and key, nothing written), 3 numerical failure (``summary.json`` with
``converged: false`` and a ``reason``, no ``fixed_point.npz``), 1 internal error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest

import neurodyn
from helpers import tiny_experiment
from neurodyn.cli import main
from neurodyn.io import load_model
from neurodyn.io.model import default_model_path

OUTPUTS = {"trajectory.npz", "fixed_point.npz", "summary.json", "convergence.png"}
SUMMARY_KEYS = {
    "name", "kind", "converged", "reason", "t_final", "num_steps", "residual",
    "spectral_abscissa", "stable", "checks", "wall_time_s", "seed", "version",
}
KINDS = ("dynamic_inversion", "dynamic_inversion_expanding", "single_loop_dynamic_inversion")

# One small shape for every simulation in this file: DI 4 -> 3, tanh, batch 2. It reaches
# its steady state at t ~ 240 in a few hundred steps.
TINY = """\
name = "tiny"
seed = 0

[circuit]
kind = "dynamic_inversion"
sizes = [4, 3]
nonlinearity = "tanh"
leak = 0.01

[arrays]
W1 = { init = "uniform", low = -1.0, high = 1.0 }
B1 = { init = "neg_transpose", of = "W1" }
delta_out = { init = "normal", std = 0.1, batch = 2 }

[simulation]
t1 = 1000.0
saveat = 11
"""

# B1 = +W1^T with a linear g and no leak: the loop has a positive eigenvalue and blows up
# (stops with reason "diverged" at t ~ 20).
DIVERGING = (
    TINY.replace('of = "W1" }', 'of = "W1", scale = -1.0 }')
    .replace('nonlinearity = "tanh"', 'nonlinearity = "linear"')
    .replace("leak = 0.01", "leak = 0.0")
    .replace("t1 = 1000.0", "t1 = 100000.0")
)
MAX_STEPS = TINY.replace("saveat = 11", "saveat = 11\nmax_steps = 5")


def write(directory: Path, text: str, name: str = "model.toml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def run_main(argv) -> SimpleNamespace:
    """``neurodyn.cli.main(argv)`` in-process; returns rc, stdout, stderr.

    ``main`` switches on float64 for the whole process; the previous setting is restored
    so that the rest of the test session is unaffected.
    """
    x64 = jax.config.jax_enable_x64
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])
    finally:
        jax.config.update("jax_enable_x64", x64)
    return SimpleNamespace(rc=rc, out=out.getvalue(), err=err.getvalue())


def run_subprocess(argv, cwd) -> SimpleNamespace:
    proc = subprocess.run(
        [sys.executable, "-m", "neurodyn", *map(str, argv)],
        cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    return SimpleNamespace(rc=proc.returncode, out=proc.stdout, err=proc.stderr)


@pytest.mark.parametrize("when", ["write", "flush"])
def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path, monkeypatch, when):
    """`neurodyn list | head -1`: the closed pipe, met while the command prints or when its
    output is flushed at the end, is exit 141 (128 + SIGPIPE) with nothing on stderr: no
    traceback, no "internal error"."""

    class ClosedPipe(io.StringIO):
        def write(self, text):
            if when == "write":
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

        def flush(self):
            if when == "flush" and self.getvalue():
                raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):  # main() points it at os.devnull
            return sink.fileno()

    with open(tmp_path / "sink", "w") as sink:
        monkeypatch.setattr(sys, "stdout", ClosedPipe())
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main(["list"]) == 141
    assert err.getvalue() == ""


# Lines that are warnings of JAX/Python/absl rather than neurodyn's own message.
_NOISE = re.compile(r"(Warning\b|warnings\.warn|^[WI]\d{4} |^\s+warnings?\.|Platform '.*' is experimental|CUDA|TPU)")


def message_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not _NOISE.search(line)]


def strict_json(path: Path) -> dict:
    """Load JSON refusing NaN/Infinity (not JSON; other tools choke on them)."""

    def reject(token):
        raise AssertionError(f"{path} contains non-JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=reject)


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


# --- one successful run shared by several tests ----------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("tiny_run")
    model = write(base, TINY)
    out = base / "results"
    res = run_main(["simulate", model, "--out", out, "--no-progress"])
    return SimpleNamespace(model=model, out=out, base=base, res=res)


def test_simulate_exits_0_and_writes_exactly_the_outputs(tiny_run):
    res = tiny_run.res
    assert res.rc == 0, res.err
    assert files_in(tiny_run.out) == OUTPUTS
    # nothing but the model and the results beside them (no leftover temp folder)
    assert files_in(tiny_run.base) == {"model.toml", "results"}
    assert "tiny" in res.out  # a short summary on stdout
    assert res.err == "", f"unexpected stderr on success: {res.err!r}"


def test_summary_json(tiny_run):
    summary = strict_json(tiny_run.out / "summary.json")
    missing = SUMMARY_KEYS - set(summary)
    assert not missing, f"summary.json lacks {sorted(missing)}"
    assert summary["name"] == "tiny"
    assert summary["kind"] == "dynamic_inversion"
    assert summary["converged"] is True
    assert isinstance(summary["reason"], str) and summary["reason"]
    assert summary["stable"] is True
    assert summary["seed"] == 0
    assert summary["version"] == neurodyn.__version__
    assert isinstance(summary["num_steps"], int) and summary["num_steps"] > 0
    assert 0.0 < summary["t_final"] <= 1000.0
    assert 0.0 <= summary["residual"] < 1e-6
    assert summary["spectral_abscissa"] < 0.0
    assert summary["wall_time_s"] >= 0.0
    assert isinstance(summary["checks"], dict) and summary["checks"], "no named checks"
    for name, check in summary["checks"].items():
        assert set(check) >= {"value", "tolerance", "passed"}, name
        assert check["passed"] is True, (name, check)
        assert check["value"] <= check["tolerance"], (name, check)


def test_trajectory_npz(tiny_run):
    summary = strict_json(tiny_run.out / "summary.json")
    with np.load(tiny_run.out / "trajectory.npz", allow_pickle=False) as npz:
        traj = dict(npz)
    assert set(traj) == {"t", "delta_0", "u_1"}
    t = traj["t"]
    assert t.ndim == 1 and len(t) >= 2
    assert t[0] == 0.0
    assert np.all(np.diff(t) > 0)
    assert t[-1] == pytest.approx(summary["t_final"])
    for name, shape in {"delta_0": (2, 4), "u_1": (2, 3)}.items():
        assert traj[name].shape == (len(t), *shape), name  # time first, then batch
        assert np.all(np.isfinite(traj[name])), name
    np.testing.assert_array_equal(traj["delta_0"][0], 0.0)  # starts from rest


def test_fixed_point_npz(tiny_run):
    with np.load(tiny_run.out / "fixed_point.npz", allow_pickle=False) as npz:
        fp = dict(npz)
    with np.load(tiny_run.out / "trajectory.npz", allow_pickle=False) as npz:
        traj = dict(npz)
    assert set(fp) == {"delta_0", "u_1"}
    assert fp["delta_0"].shape == (2, 4)
    assert fp["u_1"].shape == (2, 3)
    for name in fp:
        np.testing.assert_allclose(fp[name], traj[name][-1], atol=1e-3, err_msg=name)
    # independently of neurodyn's engine: the steady state of eq. 16 with the model's arrays
    arrays = {k: a.value for k, a in load_model(tiny_run.model).arrays.items()}
    W, B, delta = arrays["W1"], arrays["B1"], arrays["delta_out"]
    np.testing.assert_allclose(fp["delta_0"], fp["u_1"] @ B.T, atol=1e-9)
    residual = np.tanh(fp["delta_0"]) @ W.T - delta - 0.01 * fp["u_1"]
    np.testing.assert_allclose(residual, 0.0, atol=1e-9)


def test_convergence_png_is_a_png(tiny_run):
    data = (tiny_run.out / "convergence.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_no_plot_omits_the_png(tmp_path):
    model = write(tmp_path, TINY)
    out = tmp_path / "out"
    res = run_main(["simulate", model, "--out", out, "--no-plot"])
    assert res.rc == 0, res.err
    assert files_in(out) == OUTPUTS - {"convergence.png"}


def test_default_out_folder_is_out_slash_name(tmp_path, monkeypatch):
    model = write(tmp_path / "models", TINY)
    monkeypatch.chdir(tmp_path)
    res = run_main(["simulate", model, "--no-plot"])
    assert res.rc == 0, res.err
    assert files_in(tmp_path / "out" / "tiny") == OUTPUTS - {"convergence.png"}


def test_simulate_without_model_runs_the_packaged_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "default"
    res = run_main(["simulate", "--out", out, "--no-plot"])
    assert res.rc == 0, res.out + res.err
    assert files_in(out) == OUTPUTS - {"convergence.png"}
    assert files_in(tmp_path) == {"default"}  # wrote nowhere else
    summary = strict_json(out / "summary.json")
    assert summary["converged"] is True
    assert summary["kind"] == "dynamic_inversion"
    assert Path(summary["model_file"]).resolve() == default_model_path().resolve()
    assert summary["name"] == load_model(None).name


# --- numerical failure: exit 3 -----------------------------------------------------------
def test_diverging_circuit_exits_3(tmp_path):
    model = write(tmp_path, DIVERGING)
    out = tmp_path / "out"
    res = run_main(["simulate", model, "--out", out])
    assert res.rc == 3, res.out + res.err
    assert "fixed_point.npz" not in files_in(out)
    assert {"summary.json", "trajectory.npz"} <= files_in(out)
    summary = strict_json(out / "summary.json")
    assert summary["converged"] is False
    assert summary["reason"] == "diverged"
    assert summary["reason_message"] == neurodyn.Reason.diverged.message
    assert summary["stable"] is False
    lines = message_lines(res.err)
    assert len(lines) == 1, res.err
    assert str(model) in lines[0] and "diverged" in lines[0] and neurodyn.Reason.diverged.message in lines[0]
    # when and where: the controller u_1 grew past the bound (B1 = +W1^T feeds it back positively)
    assert summary["diverged"]["variable"] == "u_1" and summary["diverged"]["max_abs"] > 1e9
    assert summary["diverged"]["t"] == summary["t_final"] and f"at t = {summary['t_final']:.4g}: u_1" in lines[0]
    # the hint names the command that fixes it, and that command does
    assert f"try neurodyn stability {model} --optimize B1" in lines[0]
    fixed = run_main(["stability", model, "--optimize", "B1", "--out", tmp_path / "st"])
    assert fixed.rc == 0, fixed.err
    again = run_main(["simulate", tmp_path / "st" / f"{model.stem}_stabilized.toml", "--out", tmp_path / "again", "--no-plot"])
    assert again.rc == 0 and strict_json(tmp_path / "again" / "summary.json")["converged"] is True, again.err


@pytest.mark.slow  # a subprocess (6 s); .ci/run runs it after the default suite
def test_max_steps_exits_3_end_to_end(tmp_path):
    model = write(tmp_path, MAX_STEPS)
    out = tmp_path / "out"
    res = run_subprocess(["simulate", model, "--out", out, "--no-plot"], cwd=tmp_path)
    assert res.rc == 3, res.out + res.err
    assert files_in(out) == {"summary.json", "trajectory.npz"}
    summary = strict_json(out / "summary.json")
    assert summary["converged"] is False
    assert summary["reason"] == "max_steps"
    assert summary["num_steps"] <= 5
    lines = message_lines(res.err)
    assert len(lines) == 1, res.err
    assert lines[0].startswith("neurodyn: error:") and "max_steps" in lines[0]


def test_failing_run_removes_stale_outputs(tmp_path):
    out = tmp_path / "out"
    good = run_main(["simulate", write(tmp_path, TINY, "good.toml"), "--out", out])
    assert good.rc == 0, good.err
    assert files_in(out) == OUTPUTS
    bad = run_main(["simulate", write(tmp_path, DIVERGING, "bad.toml"), "--out", out, "--no-plot"])
    assert bad.rc == 3, bad.err
    # no fixed point (and no plot of the earlier run) may survive a failed run
    assert files_in(out) == {"summary.json", "trajectory.npz"}
    assert strict_json(out / "summary.json")["converged"] is False


# --- invalid input: exit 2, one line, nothing written ------------------------------------
def _pickled(d: Path):
    np.save(d / "W1.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _strings(d: Path):
    np.save(d / "W1.npy", np.array(["a", "bb", "ccc"], dtype="U5"))


INVALID = [
    ("missing_file", None, None, "absent.toml"),
    ("toml_syntax", TINY.replace("leak = 0.01", "leak = = 0.01"), None, "line"),
    ("unknown_kind", TINY.replace('"dynamic_inversion"', '"dynamic_inversoin"'), None, "'dynamic_inversion'"),
    ("unknown_option", TINY.replace("leak = 0.01", "laek = 0.01"), None, "'leak'"),
    ("unknown_nonlinearity", TINY.replace('"tanh"', '"tanhh"'), None, "'tanh'"),
    ("unknown_solver", TINY.replace("saveat = 11", 'saveat = 11\nsolver = "tsit4"'), None, "'tsit5'"),
    ("missing_array", TINY.replace('B1 = { init = "neg_transpose", of = "W1" }\n', ""), None, "[arrays].B1"),
    ("wrong_shape", TINY.replace('W1 = { init = "uniform", low = -1.0, high = 1.0 }', "W1 = { values = [1.0, 2.0] }"), None, "[arrays].W1"),
    ("nan_values", TINY.replace('delta_out = { init = "normal", std = 0.1, batch = 2 }', "delta_out = { values = [nan, 0.0, 0.0] }"), None, "[arrays].delta_out"),
    ("negative_leak", TINY.replace("leak = 0.01", "leak = -1.0"), None, "[circuit].leak"),
    ("zero_size", TINY.replace("sizes = [4, 3]", "sizes = [0, 3]"), None, "[circuit].sizes"),
    ("zero_rtol", TINY.replace("saveat = 11", "saveat = 11\nrtol = 0.0"), None, "[simulation].rtol"),
    ("t1_before_t0", TINY.replace("t1 = 1000.0", "t1 = -1.0"), None, "t1"),
    ("pickled_npy", TINY.replace('W1 = { init = "uniform", low = -1.0, high = 1.0 }', 'W1 = { file = "W1.npy" }'), _pickled, "[arrays].W1.file"),
    ("string_npy", TINY.replace('W1 = { init = "uniform", low = -1.0, high = 1.0 }', 'W1 = { file = "W1.npy" }'), _strings, "[arrays].W1.file"),
]


@pytest.mark.parametrize("text, make, needle", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_input_exits_2_with_one_line_and_writes_nothing(tmp_path, text, make, needle):
    if make is not None:
        make(tmp_path)
    model = tmp_path / "absent.toml" if text is None else write(tmp_path, text)
    before = files_in(tmp_path)
    out = tmp_path / "out"
    res = run_main(["simulate", model, "--out", out])
    assert res.rc == 2, res.out + res.err
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1, res.err
    assert lines[0].startswith("neurodyn: error:")
    assert str(model) in lines[0] and needle in lines[0], lines[0]
    assert not out.exists()
    assert files_in(tmp_path) == before
    # `check` reports the same problem the same way
    res = run_main(["check", model])
    assert res.rc == 2
    assert [line for line in res.err.splitlines() if line.strip()] == lines


def test_invalid_input_exits_2_end_to_end(tmp_path):
    model = write(tmp_path, TINY.replace("saveat = 11", 'saveat = 11\nsolver = "tsit4"'))
    out = tmp_path / "out"
    res = run_subprocess(["simulate", model, "--out", out], cwd=tmp_path)
    assert res.rc == 2, res.out + res.err
    lines = message_lines(res.err)
    assert len(lines) == 1, res.err
    assert lines[0].startswith("neurodyn: error:")
    assert str(model) in lines[0] and "[simulation].solver" in lines[0] and "'tsit5'" in lines[0]
    assert res.err.strip() == lines[0], f"extra (warning) lines on stderr: {res.err!r}"
    assert not out.exists()
    assert files_in(tmp_path) == {"model.toml"}


def test_out_that_is_a_file_exits_2(tmp_path):
    model = write(tmp_path, TINY)
    out = tmp_path / "taken"
    out.write_text("keep me")
    res = run_main(["simulate", model, "--out", out])
    assert res.rc == 2
    assert len([line for line in res.err.splitlines() if line.strip()]) == 1
    assert out.read_text() == "keep me"
    assert files_in(tmp_path) == {"model.toml", "taken"}


@pytest.mark.parametrize("command", ["simulate", "stability", "train", "sweep"])
def test_empty_out_exits_2_instead_of_writing_into_the_current_folder(tmp_path, monkeypatch, command):
    model = write(tmp_path, TINY)
    monkeypatch.chdir(tmp_path)
    res = run_main([command, model, "--out", ""])
    assert res.rc == 2 and "--out" in res.err and "empty path" in res.err
    assert len(message_lines(res.err)) == 1
    assert files_in(tmp_path) == {"model.toml"}


def test_mismatched_input_batches_exit_2(tmp_path):
    text = TINY.replace("leak = 0.01", 'leak = 0.01\ncontroller = "linearized"').replace(
        "[simulation]", 'a_0 = { init = "normal", std = 1.0, batch = 3 }\n\n[simulation]'
    )
    model = write(tmp_path, text)
    out = tmp_path / "out"
    res = run_main(["simulate", model, "--out", out])
    assert not out.exists()
    assert res.rc == 2, res.err
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(model) in lines[0], res.err


# --- check, list, version ------------------------------------------------------------------
def test_check_prints_arrays_with_shapes_and_seeds(tmp_path):
    text = TINY.replace("high = 1.0 }", "high = 1.0, seed = 7 }")
    model = write(tmp_path, text)
    res = run_main(["check", model])
    assert res.rc == 0, res.err
    assert res.err == ""
    assert files_in(tmp_path) == {"model.toml"}  # check writes nothing
    lines = res.out.splitlines()
    expected = {"W1": ("(3, 4)", 7), "B1": ("(4, 3)", None), "delta_out": ("(2, 3)", load_model(model).arrays["delta_out"].seed)}
    for name, (shape, seed) in expected.items():
        line = next((line for line in lines if line.split()[:1] == [name]), None)
        assert line is not None, f"no line for {name} in:\n{res.out}"
        assert shape in line, line
        if seed is not None:
            assert f"seed {seed}" in line, line
    assert "dynamic_inversion" in res.out
    assert "[4, 3]" in res.out


def test_check_is_reproducible(tmp_path):
    model = write(tmp_path, TINY)
    assert run_main(["check", model]).out == run_main(["check", model]).out


def test_list_shows_the_kinds():
    res = run_main(["list"])
    assert res.rc == 0
    heads = {line.split(":")[0] for line in res.out.splitlines() if line and not line[0].isspace()}
    assert set(KINDS) <= heads, res.out


def test_version_in_process(capsys):
    assert main(["--version"]) == 0
    assert neurodyn.__version__ in capsys.readouterr().out


def test_python_dash_m_version(tmp_path):
    res = run_subprocess(["--version"], cwd=tmp_path)
    assert res.rc == 0, res.err
    assert res.out.strip() == f"neurodyn {neurodyn.__version__}"


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "simulate" in capsys.readouterr().out


def test_unknown_command_exits_2_with_one_line(capsys):
    assert main(["simulat"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'simulat'" in err, err


def test_stability_takes_a_model_file_after_optimize(tmp_path):
    """``stability --optimize B1 model.toml``: the file is the model, not a second array name."""
    model = write(tmp_path, TINY.replace('name = "tiny"', 'name = "tiny_after_optimize"'))
    res = run_main(["stability", "--optimize", "B1", model, "--out", tmp_path / "st"])
    assert res.rc == 0, res.err
    report = strict_json(tmp_path / "st" / "stability.json")
    assert report["name"] == "tiny_after_optimize" and report["optimize"] == ["B1"]


def test_simulate_points_an_experiment_file_to_train(tmp_path):
    exp = write(tmp_path, '[network]\nsizes = [2, 2]\nnonlinearities = ["linear"]\n[training]\nlr = 0.1\nsteps = 1\n[rules.bp]\n', "exp.toml")
    res = run_main(["simulate", exp, "--out", tmp_path / "o"])
    lines = message_lines(res.err)
    assert res.rc == 2 and len(lines) == 1 and "experiment file" in lines[0] and "neurodyn train" in lines[0]
    assert not (tmp_path / "o").exists()


def test_set_and_seed_override_the_file_and_the_resolved_file_reproduces_the_run(tmp_path):
    """``--set circuit.leak=0.5 --seed 7``: the run uses them (the leak moves the fixed
    point, the seed the arrays), and resolved.toml, simulated alone, gives the same fixed
    point; a wrong key is the file's one-line error."""
    model = write(tmp_path, TINY)
    base = run_main(["simulate", model, "--out", tmp_path / "base", "--no-plot"])
    res = run_main(["simulate", model, "--set", "circuit.leak=0.5", "--seed", "7", "--set", "simulation.saveat=21", "--out", tmp_path / "set", "--no-plot"])
    assert base.rc == 0 and res.rc == 0, res.err
    assert not (tmp_path / "base" / "resolved.toml").exists()
    resolved = (tmp_path / "set" / "resolved.toml").read_text()
    assert "leak = 0.5" in resolved and "seed = 7" in resolved and "saveat = 21" in resolved
    again = run_main(["simulate", tmp_path / "set" / "resolved.toml", "--out", tmp_path / "again", "--no-plot"])
    assert again.rc == 0, again.err
    fp_set, fp_again, fp_base = (np.load(tmp_path / d / "fixed_point.npz") for d in ("set", "again", "base"))
    for k in fp_set.files:
        np.testing.assert_array_equal(fp_set[k], fp_again[k])
    assert not np.allclose(fp_set["u_1"], fp_base["u_1"])
    bad = run_main(["simulate", model, "--set", "circuit.lek=0.5", "--out", tmp_path / "bad"])
    assert bad.rc == 2 and bad.err.count("\n") == 1 and "[circuit].lek" in bad.err and "did you mean 'leak'" in bad.err
    bad = run_main(["simulate", model, "--set", "leak", "--out", tmp_path / "bad"])
    assert bad.rc == 2 and "KEY=VALUE" in bad.err and not (tmp_path / "bad").exists()


def test_figure_format_pdf_and_svg_replace_an_earlier_runs_png(tmp_path):
    """``--format svg`` then ``--format pdf`` into the same folder: each run's figure is in
    its format (checked by the file's first bytes), and the earlier format's file is gone."""
    model = write(tmp_path, TINY)
    out = tmp_path / "out"
    assert run_main(["simulate", model, "--out", out]).rc == 0
    res = run_main(["simulate", model, "--out", out, "--format", "svg"])
    assert res.rc == 0, res.err
    assert files_in(out) == OUTPUTS - {"convergence.png"} | {"convergence.svg"}
    assert b"<svg" in (out / "convergence.svg").read_bytes()[:2000]
    assert run_main(["simulate", model, "--out", out, "--format", "pdf"]).rc == 0
    assert files_in(out) == OUTPUTS - {"convergence.png"} | {"convergence.pdf"}
    assert (out / "convergence.pdf").read_bytes().startswith(b"%PDF")
    bad = run_main(["simulate", model, "--out", tmp_path / "bad", "--format", "jpg"])
    assert bad.rc == 2 and len(message_lines(bad.err)) == 1 and "--format" in bad.err and not (tmp_path / "bad").exists()


def test_resolved_file_only_with_results_and_never_stale(tmp_path):
    """``train --seed`` is recorded in resolved.toml; an input error found after loading (an
    unknown array to optimise) writes nothing; a later run without overrides into the same
    folder removes the earlier resolved.toml, which no longer describes the results."""
    exp = write(tmp_path, tiny_experiment(), "exp.toml")
    out = tmp_path / "train"
    assert run_main(["train", exp, "--seed", "5", "--out", out, "--no-progress"]).rc == 0
    resolved = (out / "resolved.toml").read_text()
    assert "seed = 5" in resolved and json.loads((out / "summary.json").read_text())["seed"] == 5
    assert run_main(["train", exp, "--out", out, "--no-progress"]).rc == 0
    assert not (out / "resolved.toml").exists()
    model = write(tmp_path, TINY)
    bad = run_main(["stability", model, "--set", "circuit.leak=0.1", "--optimize", "B7", "--out", tmp_path / "stab"])
    assert bad.rc == 2 and "B7" in bad.err and not (tmp_path / "stab").exists()


def test_regression_data_with_a_softmax_output_is_an_input_error(tmp_path):
    text = tiny_experiment().replace('["tanh", "linear"]', '["tanh", "softmax"]').replace("[training]", '[training]\n').replace(
        "[network]", '[network]\nloss = "cross_entropy"')
    res = run_main(["train", write(tmp_path, text, "exp.toml"), "--out", tmp_path / "o"])
    lines = message_lines(res.err)
    assert res.rc == 2 and len(lines) == 1 and "[data].kind" in lines[0] and "squared_error" in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # three subprocesses (16 s); .ci/run runs it
def test_the_compilation_cache_fills_and_gives_the_same_results(tmp_path):
    """A command stores its compiled programs in NEURODYN_CACHE_DIR (the suite itself runs
    with it off); a run that reads them writes the same fixed point."""
    model = write(tmp_path, TINY)
    env = {**os.environ, "NEURODYN_CACHE_DIR": str(tmp_path / "cache")}
    for out in ("first", "second"):
        proc = subprocess.run([sys.executable, "-m", "neurodyn", "simulate", str(model), "--out", str(tmp_path / out), "--no-plot"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert any(p.name.startswith("jit__newton") for p in (tmp_path / "cache").iterdir())
    a, b = np.load(tmp_path / "first" / "fixed_point.npz"), np.load(tmp_path / "second" / "fixed_point.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)


EXPERIMENT_TINY = tiny_experiment(name="long", lr=0.001, rules="[rules.bp]\n")


@pytest.mark.slow  # a subprocess trained and interrupted (5 s); .ci/run runs it
def test_ctrl_c_stops_a_training_at_a_checkpoint_with_exit_130(tmp_path):
    """SIGINT to a running ``neurodyn train`` (as Ctrl-C sends it): the command stops at
    the next checkpoint and exits 130; the checkpoint is whole and ahead of step 0."""
    import signal
    import time

    from neurodyn.io.experiment import load_experiment
    from neurodyn.io.training import _load_checkpoint

    text = EXPERIMENT_TINY.replace("steps = 20", "steps = 200000").replace("eval_every = 10", "eval_every = 200")
    file = write(tmp_path, text, "long.toml")
    out = tmp_path / "run"
    # as a terminal would: SIGINT handled (a test runner's worker may have it ignored)
    start = "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); from neurodyn.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", start, "train", str(file), "--out", str(out), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.npz").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    state = _load_checkpoint(out / "checkpoint.npz", load_experiment(file))
    assert all(0 < step < 200000 for _, step in state["networks"].values())
