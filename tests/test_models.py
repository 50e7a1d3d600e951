"""Every shipped model file runs with default settings, converges, and passes its checks."""

from pathlib import Path

import pytest

from neurodyn.io.model import default_model_path, load_model
from neurodyn.io.simulation import run_simulation

MODELS = sorted((Path(__file__).parents[1] / "models").glob("*.toml"))


def test_models_folder_is_complete():
    kinds = {load_model(m).kind for m in MODELS}
    assert {"dynamic_inversion", "dynamic_inversion_expanding", "single_loop_dynamic_inversion"} <= kinds
    assert (Path(__file__).parents[1] / "models" / "dynamic_inversion.toml").read_text() == default_model_path().read_text()


@pytest.mark.parametrize("path", MODELS, ids=[m.stem for m in MODELS])
def test_model_converges_and_passes_checks(path, tmp_path):
    summary = run_simulation(load_model(path), tmp_path / "out", plot=False)
    assert summary["converged"] and summary["stable"], summary["reason"]
    assert summary["spectral_abscissa"] < 0
    for name, check in summary["checks"].items():
        assert check["passed"], (name, check)
    assert (tmp_path / "out" / "fixed_point.npz").is_file()


#: the models whose stability check compiles longest (9 s each on the 2-core machine): the
#: default suite simulates them (above), `.ci/run` runs their stability check as well
SLOW_STABILITY = ("continuous_dtp_gamma", "dendritic_mixture_two_phase")


@pytest.mark.parametrize("path", [pytest.param(m, marks=pytest.mark.slow) if m.stem in SLOW_STABILITY else m for m in MODELS], ids=[m.stem for m in MODELS])
def test_stability_runs_on_every_model(path, tmp_path):
    """The analytic Jacobian agrees with autodiff at the fixed point; structured == dense."""
    from neurodyn.io.stability import run_stability

    report = run_stability(load_model(path), tmp_path / "st")
    assert report["before"]["verdict"] == "stable"
    assert report["before"].get("structured_dense_difference", 0.0) < 1e-9
    fp = report["fixed_point_before"]
    assert fp["converged"] and fp["analytic_vs_autodiff_jacobian"] < 1e-12
    assert (tmp_path / "st" / "spectrum.png").is_file()
