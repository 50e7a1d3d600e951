"""Model files at the library level: ``neurodyn.io.load_model`` and ``ModelError``.

Every invalid input must raise ``ModelError`` whose message is ONE line naming the file,
the offending key and (where one applies) the closest valid name. Valid files must load
reproducibly. No ODE is integrated here, so the whole file runs in a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurodyn.io import ModelError, load_model

REPO = Path(__file__).resolve().parents[1]

# The small valid base model every error case mutates (one text edit per case).
BASE = """\
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
t1 = 50.0
saveat = 5
"""

W1_LINE = 'W1 = { init = "uniform", low = -1.0, high = 1.0 }'
B1_LINE = 'B1 = { init = "neg_transpose", of = "W1" }'
DELTA_LINE = 'delta_out = { init = "normal", std = 0.1, batch = 2 }'


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, f"test bug: {old!r} not in the base model"
    return text.replace(old, new, 1)


def write(tmp_path: Path, text: str, name: str = "model.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path) -> ModelError:
    with pytest.raises(ModelError) as info:
        load_model(path)
    return info.value


def assert_one_line(err: ModelError, path: Path, *needles: str) -> str:
    msg = str(err)
    assert msg.strip(), "empty error message"
    assert "\n" not in msg and "\r" not in msg, f"message is not one line: {msg!r}"
    assert str(path) in msg, f"file path {path} not named in: {msg}"
    for needle in needles:
        assert needle in msg, f"{needle!r} not in: {msg}"
    return msg


# --- .npy fixtures for the `file` cases -----------------------------------------------
def _npy_pickled(d: Path):
    np.save(d / "bad.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _npy_strings(d: Path):
    np.save(d / "bad.npy", np.array(["ab", "cde", "f"], dtype="U5"))


def _npy_wrong_shape(d: Path):
    np.save(d / "bad.npy", np.zeros((4, 3)))  # W1 is (3, 4): the transpose


def _npy_nan(d: Path):
    a = np.zeros((3, 4))
    a[1, 2] = np.nan
    np.save(d / "bad.npy", a)


def _npy_empty_batch(d: Path):
    np.save(d / "bad.npy", np.zeros((0, 3)))  # a batch of no samples


def _npy_garbage(d: Path):
    (d / "bad.npy").write_bytes(b"this is not a numpy file at all")


# (id, model text, npy maker or None, substrings the one-line message must contain)
CASES = [
    ("toml_syntax", edit("leak = 0.01", "leak = = 0.01"), None, ["TOML", "line"]),
    ("toml_unclosed_table", edit("[simulation]", "[simulation"), None, ["line"]),
    ("unknown_top_level_key", "foo = 1\n" + BASE, None, ["foo", "unknown key"]),
    ("unknown_kind", edit('"dynamic_inversion"', '"dynamic_inversoin"'), None, ["[circuit].kind", "dynamic_inversoin", "dynamic_inversion"]),
    ("missing_circuit_table", BASE.split("[circuit]")[0], None, ["[circuit]"]),
    ("missing_kind", edit('kind = "dynamic_inversion"\n', ""), None, ["[circuit].kind"]),
    ("unknown_circuit_option", edit("leak = 0.01", "laek = 0.01"), None, ["[circuit].laek", "'leak'"]),
    ("unknown_solver", edit("saveat = 5", 'saveat = 5\nsolver = "tsit4"'), None, ["[simulation].solver", "tsit4", "'tsit5'"]),
    ("unknown_simulation_key", edit("saveat = 5", "saveat = 5\nrtoll = 1e-3"), None, ["[simulation].rtoll", "'rtol'"]),
    ("unknown_nonlinearity", edit('"tanh"', '"tanhh"'), None, ["[circuit].nonlinearity", "tanhh", "'tanh'"]),
    ("leaky_relu_slope_too_big", edit('"tanh"', '"leaky_relu:2"'), None, ["[circuit].nonlinearity", "slope"]),
    ("leaky_relu_slope_zero", edit('"tanh"', '"leaky_relu:0"'), None, ["[circuit].nonlinearity", "slope"]),
    ("leaky_relu_slope_not_number", edit('"tanh"', '"leaky_relu:abc"'), None, ["[circuit].nonlinearity", "slope"]),
    ("unknown_controller", edit("leak = 0.01", 'leak = 0.01\ncontroller = "linearised"'), None, ["[circuit].controller"]),
    ("missing_array", edit(B1_LINE + "\n", ""), None, ["[arrays].B1", "(4, 3)"]),
    ("unknown_array", edit("[arrays]\n", '[arrays]\nW3 = { init = "zeros" }\n'), None, ["[arrays].W3", "W1"]),
    ("array_not_a_table", edit(W1_LINE, "W1 = 3.0"), None, ["[arrays].W1"]),
    ("unknown_init", edit('init = "uniform"', 'init = "uniformm"'), None, ["[arrays].W1.init", "uniformm", "'uniform'"]),
    ("unknown_init_param", edit("low = -1.0", "lwo = -1.0"), None, ["[arrays].W1.lwo", "'low'"]),
    ("uniform_low_above_high", edit("low = -1.0, high = 1.0", "low = 1.0, high = -1.0"), None, ["[arrays].W1.low"]),
    ("negative_std", edit("std = 0.1", "std = -0.1"), None, ["[arrays].delta_out.std"]),
    ("wrong_shape_values", edit(W1_LINE, "W1 = { values = [[1.0, 2.0], [3.0, 4.0]] }"), None, ["[arrays].W1", "(2, 2)", "(3, 4)"]),
    ("ragged_values", edit(W1_LINE, "W1 = { values = [[1.0, 2.0], [3.0]] }"), None, ["[arrays].W1.values"]),
    ("non_numeric_values", edit(W1_LINE, 'W1 = { values = [["a", "b", "c", "d"], ["a", "b", "c", "d"], ["a", "b", "c", "d"]] }'), None, ["[arrays].W1.values"]),
    ("nan_in_values", edit(DELTA_LINE, "delta_out = { values = [0.1, nan, 0.2] }"), None, ["[arrays].delta_out", "NaN"]),
    ("inf_in_values", edit(DELTA_LINE, "delta_out = { values = [[0.1, -inf, 0.2], [0.0, 0.0, 0.0]] }"), None, ["[arrays].delta_out"]),
    ("nan_init_param", edit("high = 1.0", "high = nan"), None, ["[arrays].W1.high"]),
    ("values_batch_disagrees", edit(DELTA_LINE, "delta_out = { values = [[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]], batch = 3 }"), None, ["[arrays].delta_out.batch"]),
    ("negative_leak", edit("leak = 0.01", "leak = -0.01"), None, ["[circuit].leak"]),
    ("nan_leak", edit("leak = 0.01", "leak = nan"), None, ["[circuit].leak"]),
    ("string_leak", edit("leak = 0.01", 'leak = "big"'), None, ["[circuit].leak"]),
    ("zero_size", edit("sizes = [4, 3]", "sizes = [4, 0]"), None, ["[circuit].sizes"]),
    ("negative_size", edit("sizes = [4, 3]", "sizes = [-4, 3]"), None, ["[circuit].sizes"]),
    ("sizes_not_a_list", edit("sizes = [4, 3]", "sizes = 4"), None, ["[circuit].sizes"]),
    ("sizes_of_floats", edit("sizes = [4, 3]", "sizes = [4.0, 3.0]"), None, ["[circuit].sizes"]),
    ("sizes_too_short", edit("sizes = [4, 3]", "sizes = [4]"), None, ["[circuit].sizes"]),
    ("zero_rtol", edit("saveat = 5", "saveat = 5\nrtol = 0.0"), None, ["[simulation].rtol"]),
    ("negative_rtol", edit("saveat = 5", "saveat = 5\nrtol = -1e-6"), None, ["[simulation].rtol"]),
    ("zero_atol", edit("saveat = 5", "saveat = 5\natol = 0.0"), None, ["[simulation].atol"]),
    ("negative_atol", edit("saveat = 5", "saveat = 5\natol = -1e-9"), None, ["[simulation].atol"]),
    ("nonpositive_max_steps", edit("saveat = 5", "saveat = 5\nmax_steps = 0"), None, ["[simulation].max_steps"]),
    ("nonpositive_dt0", edit("saveat = 5", "saveat = 5\ndt0 = 0.0"), None, ["[simulation].dt0"]),
    ("inf_t1", edit("t1 = 50.0", "t1 = inf"), None, ["[simulation].t1"]),
    ("saveat_too_few", edit("saveat = 5", "saveat = 1"), None, ["[simulation].saveat"]),
    ("saveat_outside_span", edit("saveat = 5", "saveat = [0.0, 10.0, 60.0]"), None, ["[simulation]", "save times"]),
    ("t1_equals_t0", edit("t1 = 50.0", "t1 = 0.0"), None, ["[simulation]", "t1"]),
    ("t1_before_t0", edit("t1 = 50.0", "t0 = 10.0\nt1 = 5.0"), None, ["[simulation]", "t1"]),
    ("euler_without_dt0", edit("saveat = 5", 'saveat = 5\nsolver = "euler"'), None, ["[simulation]", "dt0"]),
    ("negative_master_seed", edit("seed = 0", "seed = -1"), None, ["seed"]),
    ("float_array_seed", edit("high = 1.0", "high = 1.0, seed = 1.5"), None, ["[arrays].W1.seed"]),
    ("simulation_not_a_table", edit("[simulation]\nt1 = 50.0\nsaveat = 5\n", "").replace('seed = 0', 'seed = 0\nsimulation = 3'), None, ["[simulation]"]),
    ("npy_pickled", edit(W1_LINE, 'W1 = { file = "bad.npy" }'), _npy_pickled, ["[arrays].W1.file", "bad.npy", "pickle"]),
    ("npy_strings", edit(W1_LINE, 'W1 = { file = "bad.npy" }'), _npy_strings, ["[arrays].W1.file", "bad.npy", "numeric"]),
    ("npy_wrong_shape", edit(W1_LINE, 'W1 = { file = "bad.npy" }'), _npy_wrong_shape, ["[arrays].W1", "(4, 3)", "(3, 4)"]),
    ("npy_nan", edit(W1_LINE, 'W1 = { file = "bad.npy" }'), _npy_nan, ["[arrays].W1", "NaN"]),
    ("npy_garbage", edit(W1_LINE, 'W1 = { file = "bad.npy" }'), _npy_garbage, ["[arrays].W1.file", "bad.npy"]),
    ("npy_missing", edit(W1_LINE, 'W1 = { file = "arrays/nope.npy" }'), None, ["[arrays].W1.file", "nope.npy", "not found"]),
    ("file_not_npy", edit(W1_LINE, 'W1 = { file = "W1.txt" }'), None, ["[arrays].W1.file", ".npy"]),
    ("neg_transpose_unknown_array", edit('of = "W1"', 'of = "W9"'), None, ["[arrays].B1.of", "W9"]),
    ("neg_transpose_missing_of", edit('B1 = { init = "neg_transpose", of = "W1" }', 'B1 = { init = "neg_transpose" }'), None, ["[arrays].B1.of"]),
    ("neg_transpose_of_input", edit('of = "W1"', 'of = "delta_out"'), None, ["[arrays].B1.of"]),
    ("batch_on_weight", edit(W1_LINE, 'W1 = { init = "uniform", low = -1.0, high = 1.0, batch = 2 }'), None, ["[arrays].W1.batch", "W1"]),
    ("zero_batch", edit("batch = 2", "batch = 0"), None, ["[arrays].delta_out.batch"]),
    ("two_sources", edit(W1_LINE, 'W1 = { init = "uniform", values = [1.0, 2.0] }'), None, ["[arrays].W1", "exactly one"]),
    ("no_source", edit(W1_LINE, "W1 = { low = -1.0 }"), None, ["[arrays].W1", "exactly one"]),
    ("stabilize_on_input", edit(DELTA_LINE, 'delta_out = { init = "normal", batch = 2, stabilize = { margin = 0.01 } }'), None, ["[arrays].delta_out.stabilize", "inputs"]),
    ("stabilize_unknown_key", edit(W1_LINE, 'W1 = { init = "uniform", stabilize = { margn = 0.01 } }'), None, ["[arrays].W1.stabilize.margn", "'margin'"]),
    # values whose draws leave float64, empty arrays, booleans, epsilon outside the SSA's range
    ("uniform_range_overflows", edit("low = -1.0, high = 1.0", "low = -1e308, high = 1e308"), None, ["[arrays].W1.low", "float64", "1e+308"]),
    ("normal_std_overflows", edit("std = 0.1", "std = 1e308"), None, ["[arrays].delta_out.std", "float64"]),
    ("neg_transpose_scale_overflows", edit(W1_LINE, 'W1 = { init = "uniform", low = 2.0, high = 3.0 }', edit(B1_LINE, 'B1 = { init = "neg_transpose", of = "W1", scale = 1e308 }')), None, ["[arrays].B1.scale", "float64"]),
    ("npy_empty_batch", edit(DELTA_LINE, 'delta_out = { file = "bad.npy" }'), _npy_empty_batch, ["[arrays].delta_out.file", "bad.npy", "(0, 3)", "empty axis"]),
    ("empty_values", edit(DELTA_LINE, "delta_out = { values = [] }"), None, ["[arrays].delta_out.values", "empty"]),
    ("empty_values_batch", edit(DELTA_LINE, "delta_out = { values = [[], []] }"), None, ["[arrays].delta_out.values", "empty"]),
    ("bool_values", edit(DELTA_LINE, "delta_out = { values = [true, false, true] }"), None, ["[arrays].delta_out.values", "boolean"]),
    ("bool_nested_values", edit(DELTA_LINE, "delta_out = { values = [[0.1, 0.2, 0.3], [0.0, true, 0.0]] }"), None, ["[arrays].delta_out.values", "boolean"]),
    ("stabilize_epsilon_below_range", edit(W1_LINE, 'W1 = { init = "uniform", stabilize = { epsilon = 1e-8 } }'), None, ["[arrays].W1.stabilize.epsilon", "from 1e-07 to 1", "1e-08"]),
    ("stabilize_epsilon_above_range", edit(W1_LINE, 'W1 = { init = "uniform", stabilize = { epsilon = 10.0 } }'), None, ["[arrays].W1.stabilize.epsilon", "from 1e-07 to 1"]),
    ("stabilize_negative_margin", edit(W1_LINE, 'W1 = { init = "uniform", stabilize = { margin = -0.01 } }'), None, ["[arrays].W1.stabilize.margin"]),
]


@pytest.mark.parametrize("text, make_npy, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_model_raises_one_line_error(tmp_path, text, make_npy, needles):
    if make_npy is not None:
        make_npy(tmp_path)
    path = write(tmp_path, text)
    err = load_error(path)
    assert_one_line(err, path, *needles)
    assert err.file == str(path)


def test_missing_model_file(tmp_path):
    path = tmp_path / "sub" / "absent.toml"
    err = load_error(path)
    assert_one_line(err, path, "not found")


def test_model_path_is_a_directory(tmp_path):
    err = load_error(tmp_path)
    assert_one_line(err, tmp_path)


def test_model_file_not_utf8(tmp_path):
    path = tmp_path / "model.toml"
    path.write_bytes(b"name = \"\xff\xfe\"\n")
    assert_one_line(load_error(path), path)


def test_empty_model_file(tmp_path):
    path = write(tmp_path, "")
    assert_one_line(load_error(path), path, "[circuit]")


def test_toml_syntax_error_names_the_line(tmp_path):
    lines = BASE.splitlines()
    lineno = lines.index("leak = 0.01") + 1
    path = write(tmp_path, edit("leak = 0.01", "leak = = 0.01"))
    msg = assert_one_line(load_error(path), path)
    assert f"line {lineno}" in msg


def test_multiline_problem_text_is_flattened(tmp_path):
    # a ragged literal triggers numpy's multi-line ValueError text in some versions; the
    # ModelError must still be one line (joined whitespace)
    path = write(tmp_path, edit(W1_LINE, 'W1 = { values = [[1.0, 2.0, 3.0, 4.0], [1.0], "x"] }'))
    assert_one_line(load_error(path), path, "[arrays].W1")


def test_t1_not_after_t0_names_the_t1_key(tmp_path):
    path = write(tmp_path, edit("t1 = 50.0", "t1 = 0.0"))
    err = load_error(path)
    assert err.key == "[simulation].t1"
    assert "[simulation].t1" in str(err)


LINEARIZED_MISMATCH = edit(
    "[simulation]",
    'a_0 = { init = "normal", std = 1.0, batch = 3 }\n\n[simulation]',
    edit("leak = 0.01", 'leak = 0.01\ncontroller = "linearized"'),
)


def test_inputs_with_mismatched_batch_sizes(tmp_path):
    path = write(tmp_path, LINEARIZED_MISMATCH)
    err = load_error(path)
    assert_one_line(err, path, "batch")


def test_inputs_with_matching_batch_sizes_load(tmp_path):
    path = write(tmp_path, LINEARIZED_MISMATCH.replace("batch = 3", "batch = 2"))
    model = load_model(path)
    assert model.batch == 2
    assert set(model.inputs()) == {"delta_out", "a_0"}
    assert model.inputs()["a_0"].shape == (2, 4)


def test_unbatched_input_broadcasts_with_batched_one(tmp_path):
    # an input without a batch axis is shared by every sample
    path = write(tmp_path, LINEARIZED_MISMATCH.replace(", batch = 3", ""))
    model = load_model(path)
    assert model.batch == 2
    assert model.inputs()["a_0"].shape == (4,)


# --- valid files ------------------------------------------------------------------------
MODEL_FILES = sorted((REPO / "models").glob("*.toml"))


def test_models_folder_is_not_empty():
    assert MODEL_FILES, f"no model files in {REPO / 'models'}"


@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.stem for p in MODEL_FILES])
def test_every_shipped_model_loads(path):
    model = load_model(path)
    specs = model.cls.array_specs(model.sizes, model.options)
    assert set(model.arrays) == set(specs)
    for name, spec in specs.items():
        value = model.arrays[name].value
        assert np.all(np.isfinite(value)), name
        if spec.role == "param":
            assert value.shape == tuple(spec.shape), name
        else:
            assert value.shape[-len(spec.shape):] == tuple(spec.shape), name
    assert model.simulation.t1 > model.simulation.t0


def test_packaged_default_model_loads():
    model = load_model(None)
    assert model.kind == "dynamic_inversion"
    assert model.path.name == "dynamic_inversion.toml"


def test_base_model_loads_with_expected_shapes(tmp_path):
    model = load_model(write(tmp_path, BASE))
    assert model.name == "tiny"
    assert model.kind == "dynamic_inversion"
    assert model.sizes == [4, 3]
    assert model.seed == 0
    assert model.arrays["W1"].value.shape == (3, 4)
    assert model.arrays["B1"].value.shape == (4, 3)
    assert model.arrays["delta_out"].value.shape == (2, 3)
    assert model.batch == 2
    assert model.circuit.state_shapes() == {"delta_0": (4,), "u_1": (3,)}
    w = model.arrays["W1"].value
    assert np.all((w >= -1.0) & (w <= 1.0))


def test_name_defaults_to_file_stem(tmp_path):
    model = load_model(write(tmp_path, edit('name = "tiny"\n', ""), name="my_model.toml"))
    assert model.name == "my_model"


def _arrays(path):
    return {k: a.value for k, a in load_model(path).arrays.items()}


def test_loading_twice_gives_identical_arrays(tmp_path):
    path = write(tmp_path, BASE)
    first, second = _arrays(path), _arrays(path)
    assert first.keys() == second.keys()
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])


def test_master_seed_changes_random_arrays(tmp_path):
    a = _arrays(write(tmp_path, BASE, "a.toml"))
    b = _arrays(write(tmp_path, edit("seed = 0", "seed = 1"), "b.toml"))
    assert not np.array_equal(a["W1"], b["W1"])
    assert not np.array_equal(a["delta_out"], b["delta_out"])


def test_array_with_own_seed_ignores_master_seed(tmp_path):
    own = edit(W1_LINE, 'W1 = { init = "uniform", low = -1.0, high = 1.0, seed = 7 }')
    a = load_model(write(tmp_path, own, "a.toml"))
    b = load_model(write(tmp_path, edit("seed = 0", "seed = 123", own), "b.toml"))
    np.testing.assert_array_equal(a.arrays["W1"].value, b.arrays["W1"].value)
    assert a.arrays["W1"].seed == b.arrays["W1"].seed == 7
    # ...while the arrays without their own seed still follow the master seed
    assert not np.array_equal(a.arrays["delta_out"].value, b.arrays["delta_out"].value)
    # and a different own seed gives a different array
    c = _arrays(write(tmp_path, own.replace("seed = 7", "seed = 8"), "c.toml"))
    assert not np.array_equal(a.arrays["W1"].value, c["W1"])


def test_adding_an_array_does_not_change_the_others(tmp_path):
    linearized = edit("leak = 0.01", 'leak = 0.01\ncontroller = "linearized"')
    a = _arrays(write(tmp_path, linearized, "a.toml"))
    b = _arrays(write(tmp_path, edit("[simulation]", 'a_0 = { init = "normal" }\n\n[simulation]', linearized), "b.toml"))
    np.testing.assert_array_equal(a["a_0"], np.zeros(4))  # optional input defaults to zeros
    assert not np.array_equal(b["a_0"], np.zeros(4))
    for k in ("W1", "B1", "delta_out"):
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("scale", [1.0, 0.3, -1.0])
def test_neg_transpose_is_minus_scale_times_transpose(tmp_path, scale):
    text = edit(B1_LINE, f'B1 = {{ init = "neg_transpose", of = "W1", scale = {scale} }}')
    arrays = _arrays(write(tmp_path, text))
    np.testing.assert_array_equal(arrays["B1"], -scale * arrays["W1"].T)


def test_neg_transpose_default_scale_is_one(tmp_path):
    arrays = _arrays(write(tmp_path, BASE))
    np.testing.assert_array_equal(arrays["B1"], -arrays["W1"].T)


SLDI = """\
seed = 3

[circuit]
kind = "single_loop_dynamic_inversion"
sizes = [4, 3, 2]
nonlinearity = "tanh"
leak = 0.05

[arrays]
W1 = { init = "uniform", low = -0.5, high = 0.5 }
W2 = { init = "normal", std = 0.5 }
B = { init = "neg_transpose", of = ["W1", "W2"] }
delta_out = { init = "normal", std = 0.1, batch = 2 }

[simulation]
t1 = 50.0
saveat = 5
"""


def test_neg_transpose_of_a_product(tmp_path):
    arrays = _arrays(write(tmp_path, SLDI))
    assert arrays["B"].shape == (4, 2)
    np.testing.assert_allclose(arrays["B"], -(arrays["W2"] @ arrays["W1"]).T, rtol=1e-14, atol=0)


def test_neg_transpose_of_a_product_in_wrong_order(tmp_path):
    path = write(tmp_path, edit('of = ["W1", "W2"]', 'of = ["W2", "W1"]', SLDI))
    assert_one_line(load_error(path), path, "[arrays].B.of")


def test_sldi_needs_two_layers(tmp_path):
    path = write(tmp_path, edit("sizes = [4, 3, 2]", "sizes = [4, 3]", SLDI))
    assert_one_line(load_error(path), path, "[circuit].sizes")


@pytest.mark.parametrize("sizes, gain", [([4, 3], 1.0), ([3, 4], 1.0), ([4, 4], 2.0)])
def test_orthogonal_init(tmp_path, sizes, gain):
    text = edit("sizes = [4, 3]", f"sizes = {sizes}")
    text = edit(W1_LINE, f'W1 = {{ init = "orthogonal", gain = {gain} }}', text)
    w = _arrays(write(tmp_path, text))["W1"]
    m, n = sizes[1], sizes[0]
    assert w.shape == (m, n)
    k = min(m, n)
    gram = w @ w.T if m <= n else w.T @ w  # orthonormal rows (wide) or columns (tall)
    np.testing.assert_allclose(gram, gain**2 * np.eye(k), atol=1e-12)


def test_orthogonal_on_a_vector_is_an_error(tmp_path):
    path = write(tmp_path, edit(DELTA_LINE, 'delta_out = { init = "orthogonal" }'))
    assert_one_line(load_error(path), path, "[arrays].delta_out")


def test_file_array_round_trips_relative_to_model_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(42)
    w = rng.normal(size=(3, 4))
    (tmp_path / "arrays").mkdir()
    np.save(tmp_path / "arrays" / "W1.npy", w)
    delta = rng.normal(size=(2, 3)).astype(np.float32)
    np.save(tmp_path / "arrays" / "delta.npy", delta)
    text = edit(W1_LINE, 'W1 = { file = "arrays/W1.npy" }')
    text = edit(DELTA_LINE, 'delta_out = { file = "arrays/delta.npy", batch = 2 }', text)
    path = write(tmp_path, text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative to the model file, not to the working folder
    model = load_model(path)
    np.testing.assert_array_equal(model.arrays["W1"].value, w)
    np.testing.assert_array_equal(model.arrays["B1"].value, -w.T)
    np.testing.assert_array_equal(model.arrays["delta_out"].value, delta.astype(np.float64))
    assert model.arrays["W1"].value.dtype == np.float64


def test_integer_npy_is_accepted(tmp_path):
    np.save(tmp_path / "w.npy", np.arange(12, dtype=np.int32).reshape(3, 4))
    arrays = _arrays(write(tmp_path, edit(W1_LINE, 'W1 = { file = "w.npy" }')))
    np.testing.assert_array_equal(arrays["W1"], np.arange(12).reshape(3, 4))


def test_values_literal(tmp_path):
    w = [[0.1, -0.2, 0.3, 0.0], [1.0, 2.0, 3.0, 4.0], [-1, 0, 1, 2]]
    text = edit(W1_LINE, f"W1 = {{ values = {w} }}")
    text = edit(DELTA_LINE, "delta_out = { values = [0.5, -0.5, 0.25] }", text)
    model = load_model(write(tmp_path, text))
    np.testing.assert_array_equal(model.arrays["W1"].value, np.array(w, dtype=float))
    np.testing.assert_array_equal(model.arrays["B1"].value, -np.array(w, dtype=float).T)
    np.testing.assert_array_equal(model.arrays["delta_out"].value, [0.5, -0.5, 0.25])
    assert model.batch is None


def test_values_literal_with_batch(tmp_path):
    text = edit(DELTA_LINE, "delta_out = { values = [[0.1, 0.2, 0.3], [0.0, 0.0, 1.0]], batch = 2 }")
    model = load_model(write(tmp_path, text))
    assert model.batch == 2
    assert model.arrays["delta_out"].value.shape == (2, 3)


def test_zeros_init_and_per_layer_nonlinearity_list(tmp_path):
    text = edit(W1_LINE, 'W1 = { init = "zeros" }')
    text = edit('nonlinearity = "tanh"', 'nonlinearity = ["leaky_relu:0.2"]', text)
    model = load_model(write(tmp_path, text))
    np.testing.assert_array_equal(model.arrays["W1"].value, np.zeros((3, 4)))
    assert model.arrays["W1"].seed is None


def test_nonlinearity_list_of_wrong_length(tmp_path):
    path = write(tmp_path, edit('nonlinearity = "tanh"', 'nonlinearity = ["tanh", "tanh"]'))
    assert_one_line(load_error(path), path, "[circuit]")


# --- known gaps (each a real defect; see the reasons) ------------------------------------
@pytest.mark.parametrize("init", ['["uniform"]', "{ a = 1 }"], ids=["list", "table"])
def test_non_string_init_is_a_model_error(tmp_path, init):
    path = write(tmp_path, edit(W1_LINE, f"W1 = {{ init = {init} }}"))
    assert_one_line(load_error(path), path, "[arrays].W1.init")


def test_negative_array_seed_is_a_model_error(tmp_path):
    path = write(tmp_path, edit("high = 1.0", "high = 1.0, seed = -5"))
    assert_one_line(load_error(path), path, "[arrays].W1.seed")


def test_nan_save_time_is_a_model_error(tmp_path):
    path = write(tmp_path, edit("saveat = 5", "saveat = [0.0, nan]"))
    assert_one_line(load_error(path), path, "[simulation].saveat")


def test_union_field_error_names_the_real_key(tmp_path):
    path = write(tmp_path, edit("saveat = 5", 'saveat = "x"'))
    err = load_error(path)
    assert err.key == "[simulation].saveat"
