"""Hostile and careless input through the CLI: every case is exit 2 (bad input) or 3
(numerical failure) with one line naming the file and key, no traceback, nothing written
outside ``--out`` and nothing half-written: sizes that cannot fit in memory are refused
before allocation, damaged files and checkpoints are named, output folders are checked
before the run, and a run's name never decides where results go."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pathlib import Path

from helpers import tiny_experiment
from neurodyn.cli import main
from neurodyn.io.resources import parse_bytes
from neurodyn.io.results import folder_name

REPO = Path(__file__).resolve().parents[1]

MODEL = """\
name = "tiny"
seed = 0
[circuit]
kind = "dynamic_inversion"
sizes = [4, 3]
nonlinearity = "linear"
leak = 0.1
[arrays]
W1 = { init = "uniform", low = -1.0, high = 1.0 }
B1 = { init = "neg_transpose", of = "W1" }
delta_out = { init = "normal", std = 0.1, batch = 2 }
[simulation]
t1 = 300.0
saveat = 5
"""

EXPERIMENT = tiny_experiment()


def _write(tmp_path, text, name="file.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _refused(capsys, argv, code, *needles):
    """``neurodyn ARGV`` exits ``code`` with exactly one line on stderr holding the needles."""
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err, err
    for n in needles:
        assert str(n) in err, err
    return err


# --- sizes that cannot fit are refused before allocation --------------------------------
@pytest.mark.parametrize(
    "old,new,key",
    [
        ("sizes = [4, 3]", "sizes = [4000000, 3]", "[circuit].sizes"),  # the dense W1 alone is 96 MB x 4
        ("saveat = 5", "saveat = 900000000", "[simulation].saveat"),
        ("batch = 2 }", "batch = 1000000000 }", "[arrays].delta_out.batch"),
    ],
)
def test_models_too_large_for_memory_are_refused_before_allocation(tmp_path, capsys, old, new, key):
    file = _write(tmp_path, MODEL.replace(old, new))
    err = _refused(capsys, ["simulate", file, "--out", tmp_path / "o", "--max-memory", "64M"], 2, f"{file}: {key}", "--max-memory")
    assert "would need about" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "command,sizes,limit,words",
    [
        # arrays 16 MB, trajectory small: Newton's and the verification's 1000^2 matrices do not fit
        ("simulate", "[1000, 1000]", "40M", ["simulating", "1000^2"]),
        # simulating fits in 20M (about 4 MB); the dense 600 x 600 block system matrix, its
        # eigenproblem and the SSA's matrices (about 50 MB) do not
        ("stability", "[300, 300]", "20M", ["stability", "600 x 600"]),
    ],
)
def test_dense_matrices_count_in_the_memory_estimate(tmp_path, capsys, command, sizes, limit, words):
    file = _write(tmp_path, MODEL.replace("sizes = [4, 3]", f"sizes = {sizes}"))
    _refused(capsys, [command, file, "--out", tmp_path / "o", "--max-memory", limit], 2, f"{file}: [circuit].sizes", "--max-memory", *words)
    assert not (tmp_path / "o").exists()


def test_newton_jacobians_of_a_large_batch_name_the_batch(tmp_path, capsys):
    # 20000 samples x a 100 x 100 Jacobian each (tanh: one per sample): about 5 GB, driven by the batch
    text = MODEL.replace("sizes = [4, 3]", "sizes = [100, 100]").replace("batch = 2 }", "batch = 20000 }")
    file = _write(tmp_path, text.replace('"linear"', '"tanh"'))
    _refused(capsys, ["simulate", file, "--out", tmp_path / "o", "--max-memory", "1G"], 2, f"{file}: [arrays].delta_out.batch", "Newton")
    assert not (tmp_path / "o").exists()


def test_a_training_too_large_for_memory_names_the_sizes(tmp_path, capsys):
    file = _write(tmp_path, EXPERIMENT.replace("sizes = [4, 5, 3]", "sizes = [4, 1000000000, 3]"))
    _refused(capsys, ["train", file, "--out", tmp_path / "o"], 2, f"{file}: [network].sizes", "more than the limit")
    assert not (tmp_path / "o").exists()


def test_the_memory_limit_moves_with_max_memory(tmp_path, capsys):
    file = _write(tmp_path, MODEL.replace("saveat = 5", "saveat = 1000"))  # a 112 kB trajectory
    _refused(capsys, ["simulate", file, "--out", tmp_path / "o", "--max-memory", "50K"], 2, "[simulation].saveat")
    assert main(["simulate", str(file), "--out", str(tmp_path / "o"), "--max-memory", "1G", "--no-plot"]) == 0
    _refused(capsys, ["simulate", file, "--max-memory", "lots"], 2, "--max-memory", "not a memory size")
    assert parse_bytes("1.5K") == 1536 and parse_bytes("2G") == 2 * 2**30 and parse_bytes("100") == 100


@pytest.mark.parametrize(
    "old,new,key",
    [
        ("seed = 0", "seed = 9223372036854775808", "seed"),
        ("saveat = 5", "saveat = 100000000000000000000", "[simulation].saveat"),
        ("saveat = 5", "saveat = 5\nmax_steps = 100000000000000000000", "[simulation].max_steps"),
        ("sizes = [4, 3]", "sizes = [4, 100000000000000000000]", "[circuit].sizes"),
        ("saveat = 5", 'saveat = 5\nsolver = "euler"\ndt0 = 1e-9', "[simulation].dt0"),  # 3e11 fixed steps
    ],
)
def test_integers_beyond_the_bounds_are_input_errors(tmp_path, capsys, old, new, key):
    file = _write(tmp_path, MODEL.replace(old, new))
    _refused(capsys, ["simulate", file, "--out", tmp_path / "o"], 2, f"{file}: {key}")


@pytest.mark.parametrize(
    "gate,words",
    [
        ('{ type = "periodic", period = 1e-9, shape = "square" }', ["square wave", "more than 100000"]),
        ('{ type = "phases", durations = [1, 1], values = [0, 1], cycles = 1000000000 }', ["cycles", "more than 100000"]),
    ],
)
def test_schedules_with_too_many_jumps_are_refused_at_once(tmp_path, capsys, gate, words):
    mixture = (REPO / "models" / "dendritic_mixture.toml").read_text()
    file = _write(tmp_path, mixture + f'\n[plasticity]\narrays = ["W1"]\ntau_w = 10.0\ngate = {gate}\n')
    _refused(capsys, ["simulate", file, "--out", tmp_path / "o"], 2, f"{file}: [plasticity].gate", *words)


@pytest.mark.parametrize(
    "rule,option,value",
    [("dtp", "warmup_steps", "100000000000000000000"), ("ddtp_rhl", "feedback_width", "100000000"), ("ao_sdtp", "aux_size", "10000000")],
)
def test_rule_options_beyond_their_bounds_are_input_errors(tmp_path, capsys, rule, option, value):
    file = _write(tmp_path, EXPERIMENT + f"[rules.{rule}]\n{option} = {value}\n")
    _refused(capsys, ["train", file, "--out", tmp_path / "o"], 2, f"[rules.{rule}]", option)


# --- values that are not what they seem ------------------------------------------------
W1_LINE = 'W1 = { init = "uniform", low = -1.0, high = 1.0 }'
DELTA_LINE = 'delta_out = { init = "normal", std = 0.1, batch = 2 }'


@pytest.mark.parametrize(
    "old,new,key,words",
    [
        ("low = -1.0, high = 1.0", "low = -1e308, high = 1e308", "[arrays].W1.low", ["float64"]),
        ("std = 0.1", "std = 1e308", "[arrays].delta_out.std", ["float64"]),
        (DELTA_LINE, "delta_out = { values = [true, false, true] }", "[arrays].delta_out.values", ["boolean"]),
        (DELTA_LINE, 'delta_out = { file = "empty.npy" }', "[arrays].delta_out.file", ["(0, 3)", "empty axis"]),
    ],
)
@pytest.mark.parametrize("command", ["check", "simulate", "stability"])
def test_values_that_overflow_are_empty_or_boolean_are_input_errors(tmp_path, capsys, old, new, key, words, command):
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))  # a batch of no samples
    file = _write(tmp_path, MODEL.replace(old, new))
    out = [] if command == "check" else ["--out", tmp_path / "o"]
    _refused(capsys, [command, file, *out], 2, f"{file}: {key}", *words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["1e-8", "10"])
def test_an_epsilon_outside_the_ssa_range_is_an_input_error(tmp_path, capsys, value):
    file = _write(tmp_path, MODEL)
    _refused(capsys, ["stability", file, "--optimize", "B1", "--epsilon", value, "--out", tmp_path / "o"], 2, f"{file}: --epsilon", "from 1e-07 to 1")
    assert not (tmp_path / "o").exists()


# --- damaged files -----------------------------------------------------------------------
def test_a_npy_header_that_claims_more_than_the_file_holds(tmp_path, capsys):
    (tmp_path / "arrays").mkdir()
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }"
    header += " " * (117 - len(header)) + "\n"
    (tmp_path / "arrays" / "W1.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(96))
    file = _write(tmp_path, MODEL.replace('W1 = { init = "uniform", low = -1.0, high = 1.0 }', 'W1 = { file = "arrays/W1.npy" }'))
    _refused(capsys, ["simulate", file, "--out", tmp_path / "o"], 2, "[arrays].W1.file", "damaged", "(100000, 100000)")


def test_a_folder_named_like_an_array_file_is_not_called_missing(tmp_path, capsys):
    (tmp_path / "W1.npy").mkdir()
    file = _write(tmp_path, MODEL.replace('W1 = { init = "uniform", low = -1.0, high = 1.0 }', 'W1 = { file = "W1.npy" }'))
    _refused(capsys, ["simulate", file, "--out", tmp_path / "o"], 2, "[arrays].W1.file", "not a regular file")


@pytest.mark.parametrize(
    "content,words",
    [
        (b'name = "\xff\xfe"\n', ["not a UTF-8 text file"]),
        (b"x = " + b"[" * 3000 + b"]" * 3000 + b"\n", ["nested too deeply"]),
    ],
)
@pytest.mark.parametrize("command", ["simulate", "train", "sweep"])
def test_files_that_are_not_readable_toml(tmp_path, capsys, content, words, command):
    file = tmp_path / "bad.toml"
    file.write_bytes(content)
    _refused(capsys, [command, file, "--out", tmp_path / "o"], 2, file, *words)


# --- output folders -------------------------------------------------------------------
def test_an_output_folder_under_a_file_is_refused_before_the_run(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    _refused(capsys, ["simulate", _write(tmp_path, MODEL), "--out", tmp_path / "a_file" / "sub"], 2, "is a file, not a folder")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_an_output_folder_that_cannot_be_created_is_refused_before_the_run(tmp_path, capsys):
    _refused(capsys, ["train", _write(tmp_path, EXPERIMENT), "--out", "/proc/neurodyn_test/out"], 2, "cannot write results here")


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/absolute_escape", "a\x00b", "..", "x/../../y"])
def test_a_name_is_a_label_never_a_path(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    text = MODEL.replace('name = "tiny"', f"name = {json.dumps(name)}")
    file = _write(tmp_path / "work", text)
    assert main(["simulate", str(file), "--no-plot"]) == 0
    made = list((tmp_path / "work" / "out").iterdir())
    assert len(made) == 1 and made[0].name == folder_name(name) and (made[0] / "summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and not os.path.exists("/tmp/absolute_escape")
    assert "/" not in folder_name(name) and not folder_name(name).startswith(".")


def test_scraps_of_a_killed_run_are_removed_by_the_next_run(tmp_path):
    scrap = tmp_path / ".o.tmp-killed"
    scrap.mkdir()
    (scrap / "trajectory.npz").write_bytes(bytes(1000))
    assert main(["simulate", str(_write(tmp_path, MODEL)), "--out", str(tmp_path / "o"), "--no-plot"]) == 0
    assert not scrap.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- checkpoints ------------------------------------------------------------------------
def _train_once(tmp_path):
    file = _write(tmp_path, EXPERIMENT)
    assert main(["train", str(file), "--out", str(tmp_path / "o")]) == 0
    return file, tmp_path / "o" / "checkpoint.npz"


def _rewrite(path, change):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize(
    "damage,words",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), ["not a readable checkpoint"]),
        (lambda p: p.write_bytes(b"not a zip file at all"), ["not a readable checkpoint"]),
        (lambda p: _rewrite(p, lambda a: a.pop("fa/W2")), ["lacks 'fa/W2'"]),
        (lambda p: _rewrite(p, lambda a: a.__setitem__("bp/W1", np.zeros((2, 2)))), ["'bp/W1' has shape (2, 2)"]),
        (lambda p: _rewrite(p, lambda a: a.__setitem__("bp/step", np.asarray("ten"))), ["'bp/step'"]),
        (lambda p: _rewrite(p, lambda a: a.__setitem__("rows", np.asarray("{broken json"))), ["not a readable checkpoint"]),
        (lambda p: _rewrite(p, lambda a: a.__setitem__("rows", np.asarray('[{"rule": 3}]'))), ["metrics rows are damaged"]),
        # a pickled object array where the weights should be: refused, never unpickled
        (lambda p: _rewrite(p, lambda a: a.__setitem__("bp/W1", np.asarray([{"x": 1}], dtype=object))), ["not a readable checkpoint"]),
    ],
)
def test_broken_checkpoints_are_named_and_left_untouched(tmp_path, capsys, damage, words):
    file, ckpt = _train_once(tmp_path)
    damage(ckpt)
    before = ckpt.read_bytes()
    capsys.readouterr()
    _refused(capsys, ["train", file, "--out", tmp_path / "o", "--resume"], 2, ckpt, *words)
    assert ckpt.read_bytes() == before


# --- runs that would do nothing, numbers that are not numbers -------------------------
@pytest.mark.parametrize(
    "old,new,key",
    [
        ("batch_size = 4", "batch_size = 400", "[training].batch_size"),
        ("steps = 20", "steps = 100000000", "[training].eval_every"),  # ten million evaluations
    ],
)
def test_trainings_with_no_update_or_endless_evaluations_are_input_errors(tmp_path, capsys, old, new, key):
    file = _write(tmp_path, EXPERIMENT.replace(old, new))
    _refused(capsys, ["train", file, "--out", tmp_path / "o"], 2, f"{file}: {key}")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize("flag,value", [("--margin", "nan"), ("--lr", "inf"), ("--epsilon", "-inf"), ("--max-iter", "1e3")])
def test_command_line_numbers_must_be_finite(tmp_path, capsys, flag, value):
    _refused(capsys, ["stability", _write(tmp_path, MODEL), "--optimize", "B1", flag, value], 2, flag)


@pytest.mark.parametrize(
    "argv,words",
    [
        (["stability", "{model}", "--optimize", "B1", "--max-iter", "1000000000000"], ["--max-iter"]),
        (["sweep", "{sweep}", "--workers", "1000000"], ["--workers", "1024"]),
        (["simulate", "{model}", "--seed", "99999999999999999999999"], ["--seed", "too large"]),
    ],
)
def test_command_line_counts_are_bounded(tmp_path, capsys, argv, words):
    model = _write(tmp_path, MODEL)
    sweep = _write(tmp_path, EXPERIMENT + '[sweep]\nseeds = 2\n', "sweep.toml")
    _refused(capsys, [a.format(model=model, sweep=sweep) for a in argv] + ["--out", tmp_path / "o"], 2, *words)
    assert not (tmp_path / "o").exists()


def test_a_training_where_every_rule_diverges_is_exit_3_with_a_complete_summary(tmp_path, capsys):
    file = _write(tmp_path, EXPERIMENT.replace("lr = 0.01", "lr = 1e200"))
    _refused(capsys, ["train", file, "--out", tmp_path / "o"], 3, "bp, fa diverged")
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert all(v.startswith("diverged") for v in summary["status"].values())
    assert (tmp_path / "o" / "metrics.csv").is_file() and (tmp_path / "o" / "learning_curves.png").is_file()
