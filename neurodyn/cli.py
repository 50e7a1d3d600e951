"""The ``neurodyn`` command: parses arguments, calls the library, maps errors to exit codes.

Exit codes: 0 success; 2 invalid input; 3 numerical failure; 130 Ctrl-C; 141 the reader of
standard output went away; 1 internal error (a bug), or a sweep's worker process killed from
outside.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

EXIT_OK, EXIT_BUG, EXIT_INPUT, EXIT_NUMERICAL = 0, 1, 2, 3
EXIT_PIPE = 141  # 128 + SIGPIPE: what a Unix tool's status is when its reader stops reading
MAX_ITER = 10**6  # stability --max-iter
MAX_WORKERS = 1024  # sweep --workers (processes on this machine, or Ray tasks in flight)


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line (exit 2), as every other input error."""

    def error(self, message: str):
        print(f"neurodyn: error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_INPUT)


def _finite(text: str) -> float:
    """A command-line number: finite (nan and inf are refused)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _count(text: str) -> int:
    """A command-line integer within int64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if abs(value) >= 2**63:
        raise argparse.ArgumentTypeError(f"{text} is too large")
    return value


def _folder(text: str) -> Path:
    """A folder path; an empty one (which would mean the current folder) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a folder, e.g. out/run1")
    return Path(text)


def _memory(text: str) -> str:
    """A memory size such as 8G (checked here, used through NEURODYN_MAX_MEMORY so that
    worker processes see it too)."""
    from .io.resources import parse_bytes

    try:
        parse_bytes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="neurodyn", description="Credit-assignment circuits as ODEs: simulate, stability, train, check, list.")
    p.add_argument("--version", action="version", version=f"neurodyn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("simulate", help="integrate a model file to its fixed point and write results")
    s.add_argument("model", nargs="?", help="model file (TOML); default: the packaged models/dynamic_inversion.toml")
    s.add_argument("--out", type=_folder, help="output folder (default: out/<model name>)")
    s.add_argument("--no-plot", action="store_true", help="do not write convergence.png")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: when stderr is a terminal)")
    s.add_argument("--seed", type=_count, help="use this master seed instead of the file's")

    st = sub.add_parser("stability", help="spectrum of the block system matrix; optionally SSA-optimise arrays until stable")
    st.add_argument("model", nargs="?", help="model file (TOML); default: the packaged default model")
    st.add_argument("--optimize", nargs="+", default=[], metavar="NAME", help="arrays to optimise (e.g. B1 B2)")
    st.add_argument("--margin", type=_finite, default=0.1, help="target: spectral abscissa < -margin (relative for expanding layers; default 0.1)")
    st.add_argument("--epsilon", type=_finite, default=1e-3, help="SSA smoothing epsilon (default 1e-3)")
    st.add_argument("--lr", type=_finite, default=1.0, help="gradient step (default 1.0)")
    st.add_argument("--max-iter", type=_count, default=500, help="iteration cap (default 500)")
    st.add_argument("--out", type=_folder, help="output folder (default: out/<model name>)")
    st.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: when stderr is a terminal)")
    st.add_argument("--seed", type=_count, help="use this master seed instead of the file's")

    tr = sub.add_parser("train", help="train networks with each credit-assignment rule of an experiment file")
    tr.add_argument("experiment", help="experiment file (TOML)")
    tr.add_argument("--out", type=_folder, help="output folder (default: out/<experiment name>)")
    tr.add_argument("--data-dir", help="folder with the MNIST IDX files (default: $NEURODYN_DATA)")
    tr.add_argument("--resume", action="store_true", help="continue from checkpoint.npz in the output folder")
    tr.add_argument("--seed", type=_count, help="use this seed instead of the file's (network, feedback, data and sample order)")
    tr.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: when stderr is a terminal)")

    sw = sub.add_parser("sweep", help="train (or simulate) every setting x seed of an experiment (or model) file's [sweep] table into one results table")
    sw.add_argument("experiment", nargs="?", help="experiment or model file with a [sweep] table")
    sw.add_argument("--summary", type=_folder, metavar="DIR", help="print the summary of a finished sweep's output folder and redraw its plot")
    sw.add_argument("--workers", type=_count, help="trials run at once, each in its own process (default: half the cores)")
    sw.add_argument("--out", type=_folder, help="output folder (default: out/<experiment name>)")
    sw.add_argument("--no-vmap", action="store_true", help="train the seeds of a setting one by one instead of as one vmapped run")
    sw.add_argument("--ray", metavar="ADDRESS", help="run the trials as Ray tasks: a cluster's address, auto (the running local cluster) or local (start one here with --workers CPUs); needs neurodyn[ray]")
    sw.add_argument("--trial-cpus", type=_finite, default=1.0, help="with --ray: CPUs each task (the seeds of one setting) holds (default 1)")
    sw.add_argument("--trial-gpus", type=_finite, default=0.0, help="with --ray: GPUs each task holds (default 0)")
    sw.add_argument("--resume", action="store_true", help="continue a killed sweep: finished trials are kept, interrupted ones continue")
    sw.add_argument("--data-dir", help="folder with the MNIST IDX files (default: $NEURODYN_DATA)")
    sw.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar over trials (default: when stderr is a terminal)")

    for command in (s, st, tr):
        command.add_argument(
            "--set", action="append", metavar="KEY=VALUE", dest="overrides",
            help="set an option of the file (dotted path, TOML value; repeatable), e.g. --set circuit.leak=0.1; the resolved file is saved as resolved.toml",
        )
    for command in (s, st, tr, sw):
        command.add_argument("--format", choices=("png", "pdf", "svg"), default="png", help="file format of the figures (default png)")
        command.add_argument(
            "--max-memory", metavar="SIZE", type=_memory,
            help="refuse a run whose estimated memory exceeds SIZE (e.g. 8G; default: half the machine's memory, or $NEURODYN_MAX_MEMORY)",
        )

    c = sub.add_parser("check", help="validate a model or experiment file (and its [sweep]) and print what it resolves to")
    c.add_argument("model", help="model or experiment file (TOML)")

    ls = sub.add_parser("list", help="list the circuit kinds with their options and arrays (--rules: the training rules)")
    ls.add_argument("--rules", action="store_true", help="list the credit-assignment rules of neurodyn train with their options")
    ls.add_argument("--markdown", action="store_true", help="with --rules: one Markdown table (as in docs/rules.md)")
    return p


def _error(message: str) -> None:
    print(f"neurodyn: error: {message}", file=sys.stderr)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _load_model(args):
    """The model of ``args.model`` with ``--set`` and ``--seed`` applied, and those overrides."""
    from .io.model import load_model
    from .io.overrides import command_line

    values = command_line(args.overrides, args.seed)
    return load_model(args.model, overrides=values), values


def _resolved_model(model, values: dict) -> str | None:
    """The model file as run, when options were set on the command line (array files by
    absolute path, so it reproduces the run from anywhere); None without overrides."""
    if not values:
        return None
    from .io.model import portable
    from .io.overrides import describe
    from .io.toml_write import dumps

    return dumps(portable(model.table, model.path.parent), header=describe(model.path, values))


def _save_resolved(out: Path, text: str | None) -> None:
    """``resolved.toml`` beside the results (written once the run has results, so an input
    error leaves nothing); a run without overrides removes an earlier run's."""
    from .io.results import write_outputs

    writers = {} if text is None else {"resolved.toml": lambda p: p.write_text(text)}
    write_outputs(out, writers, stale=["resolved.toml"])


def _stability_hint(model, summary: dict) -> str:
    """For a circuit that did not settle around an unstable fixed point, and whose kind has
    a block system matrix SSA can optimise: the stability command to try, with its feedback
    arrays (those named B... or Q...)."""
    import math

    sa = summary.get("spectral_abscissa")
    unstable = summary.get("reason") in ("diverged", "nonfinite") or (sa is not None and math.isfinite(sa) and sa >= 0)
    if not unstable or model.neural_circuit.system_matrix() is None:
        return ""
    specs = model.cls.array_specs(model.sizes, model.options)
    feedback = [k for k, spec in specs.items() if spec.role == "param" and k[:1] in ("B", "Q")]
    if not feedback:
        return ""
    return f"; its loop may be unstable: try neurodyn stability {model.path} --optimize {' '.join(feedback)}"


def _cmd_simulate(args) -> int:
    from .io.simulation import run_simulation

    model, values = _load_model(args)
    out = _out_dir(args, model)
    if out is None:
        return EXIT_INPUT
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    summary = run_simulation(model, out, plot=not args.no_plot, progress=progress, figure_format=args.format)
    _save_resolved(out, _resolved_model(model, values))
    batch = f", batch {summary['batch']}" if summary["batch"] else ""
    print(f"{summary['name']} ({summary['kind']}, sizes {summary['sizes']}{batch})")
    state = "yes" if summary["converged"] else "NO"
    print(f"  converged: {state} ({summary['reason']}; ODE {summary['ode_reason']} at t = {summary['t_final']:.4g} after {summary['num_steps']} steps, Newton {summary['newton_steps']} steps)")
    verdict = "stable" if summary["stable"] else "NOT stable"
    print(f"  residual max|dy/dt| = {_fmt(summary['residual'])}; spectral abscissa = {_fmt(summary['spectral_abscissa'])} ({verdict})")
    if summary.get("time_dependent"):
        print(f"  (time-dependent: residual and abscissa are those of {summary['spectral_abscissa_of']}; {len(summary['jump_times'])} jump times)")
    for name, p in summary.get("plastic", {}).items():
        print(f"  plastic {name}: tau_w = {p['tau_w']:g}, ||W(t_final) - W(0)||_F = {_fmt(p['change_frobenius'])} (largest over samples)")
    for name, c in summary["checks"].items():
        print(f"  check {name} = {_fmt(c['value'])} (tolerance {c['tolerance']:.0e}): {'passed' if c['passed'] else 'FAILED'}")
    for name, v in summary.get("approximations", {}).items():
        print(f"  approximation {name} = {_fmt(v)} (first-order prediction; reported, not a pass/fail check)")
    print(f"  wall time {summary['wall_time_s']:.2f} s; results in {out}/")
    _unswept_note(model.path)
    if not summary["converged"]:
        where = ""
        if "diverged" in summary:
            d = summary["diverged"]
            where = f" at t = {d['t']:.4g}: {d['variable']} reached {d['max_abs']:.3g}"
        why = f"{summary['reason']}{where}: {summary['reason_message']}"
        _error(f"{model.path}: the circuit did not converge ({why}){_stability_hint(model, summary)}; see {out}/summary.json")
        return EXIT_NUMERICAL
    return EXIT_OK


def _out_dir(args, model) -> Path | None:
    """``--out``, or ``out/<name>`` with the name made a folder name (never a path); checked
    writable before the run (:func:`~neurodyn.io.results.check_out_dir`) and held by this
    command until it ends (:func:`~neurodyn.io.results.hold`: another command writing there
    meanwhile is an input error)."""
    from .io.results import check_out_dir, folder_name, hold

    out = args.out if args.out is not None else Path("out") / folder_name(model.name)
    if out.exists() and not out.is_dir():
        _error(f"--out {out}: exists and is not a folder; choose another output folder")
        return None
    check_out_dir(out)
    args.held.enter_context(hold(out))
    return out


def _cmd_stability(args) -> int:
    from .io.stability import run_stability

    if args.margin < 0 or args.epsilon <= 0 or args.lr <= 0 or not 0 <= args.max_iter <= MAX_ITER:
        _error(f"--margin must be >= 0, --epsilon and --lr positive, --max-iter from 0 to {MAX_ITER}")
        return EXIT_INPUT
    if args.model is None and args.optimize and args.optimize[-1].endswith(".toml"):
        # `stability --optimize B1 model.toml`: --optimize took the model file as an array name
        args.model = args.optimize.pop()
    model, values = _load_model(args)
    out = _out_dir(args, model)
    if out is None:
        return EXIT_INPUT
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    r = run_stability(
        model, out, optimize=args.optimize, margin=args.margin, epsilon=args.epsilon, lr=args.lr, max_iter=args.max_iter, progress=progress,
        figure_format=args.format,
    )
    _save_resolved(out, _resolved_model(model, values))
    b = r["before"]
    what = "Jacobian (block matrix) at the fixed point" if b.get("matrix") == "jacobian_at_fixed_point" else "block system matrix"
    print(f"{r['name']} ({r['kind']}): {what} {r['block_matrix_shape'][0]}x{r['block_matrix_shape'][1]}")
    kind = "oscillatory" if b["oscillatory"] else "non-oscillatory"
    print(f"  spectral abscissa {_fmt(b['spectral_abscissa'])} ({b['verdict']}, {kind}); SSA(eps={r['epsilon']:g}) {_fmt(b['smoothed_spectral_abscissa'])}")
    if "structured_dense_difference" in b:
        print(f"  structured vs dense abscissa: difference {_fmt(b['structured_dense_difference'])}")
    fp = r["fixed_point_before"]
    print(f"  Jacobian at the fixed point: abscissa {_fmt(fp['jacobian_spectral_abscissa'])} ({fp['reason']})")
    if r["optimize"]:
        a = r["after"]
        state = "reached" if r["success"] else "NOT reached"
        print(f"  optimised {', '.join(r['optimize'])}: target {_fmt(r['target'])} {state} after {r['iterations']} iterations ({r['seconds']:.2f} s)")
        print(f"  after: spectral abscissa {_fmt(a['spectral_abscissa'])} ({a['verdict']}); SSA {_fmt(a['smoothed_spectral_abscissa'])}")
        if not r["success"]:
            _error(f"{model.path}: could not stabilise: {r['message']}")
            print(f"  results in {out}/")
            return EXIT_NUMERICAL
    print(f"  results in {out}/")
    return EXIT_OK


def _cmd_train(args) -> int:
    from .io.errors import NumericalError
    from .io.experiment import load_experiment
    from .io.overrides import command_line
    from .io.training import run_training

    exp = load_experiment(args.experiment, overrides=command_line(args.overrides, args.seed))
    out = _out_dir(args, exp)
    if out is None:
        return EXIT_INPUT
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        summary = run_training(exp, out, data_dir=args.data_dir, resume=args.resume, progress=progress, figure_format=args.format)
    except KeyboardInterrupt:
        _save_resolved(out, exp.resolved)
        _error(f"interrupted; the last checkpoint is in {out}/checkpoint.npz: continue with --resume")
        return 130
    except NumericalError:
        _save_resolved(out, exp.resolved)  # the results of the rules that did not diverge are written
        raise
    _save_resolved(out, exp.resolved)
    print(f"{summary['name']}: {summary['steps']} steps on {summary['data']['name']} ({summary['data']['n_train']} train / {summary['data']['n_test']} test)")
    for label, final in summary["final"].items():
        acc = f", test accuracy {final['test_accuracy']:.4f}" if "test_accuracy" in final else ""
        print(f"  {label:<16} train loss {_fmt(final['train_loss'])}, test loss {_fmt(final['test_loss'])}{acc} ({final['wall_s']:.1f} s)")
    for label, text in summary.get("warnings", {}).items():
        print(f"  warning: {label}: {text}")
    print(f"  results in {out}/")
    _unswept_note(exp.path)
    return EXIT_OK


def _unswept_note(path: Path) -> None:
    """Say so when a file also holds a [sweep] table, which train and simulate do not run."""
    from .io.errors import ModelError, read_toml

    try:
        sweep = "sweep" in read_toml(Path(path), "model")
    except ModelError:  # the file moved or changed while the command ran: nothing to say
        return
    if sweep:
        print(f"  note: {path} has a [sweep] table, which this command does not run: neurodyn sweep {path} runs it")


def _cmd_sweep(args) -> int:
    from .io.sweep import RayOptions, default_workers, load_sweep, summarize, summary_lines
    from .io.resources import cores, present_cores
    from .io.sweep_run import run_sweep

    if args.summary is not None:
        if args.experiment is not None:
            _error(f"{args.experiment}: give either an experiment file or --summary DIR, not both")
            return EXIT_INPUT
        from .io.sweep import partial_summary

        out = args.summary
        if (out / "sweep.json").is_file() and not (out / "results.csv").exists():
            summary = partial_summary(out)  # an unfinished sweep, even a running one: read, nothing written
        else:
            if out.is_dir():
                from .io.results import hold

                args.held.enter_context(hold(out))  # not while a sweep writes there
            summary = summarize(out, figure_format=args.format)
    else:
        if args.experiment is None:
            _error("sweep: name an experiment file with a [sweep] table, or --summary DIR")
            return EXIT_INPUT
        workers = default_workers() if args.workers is None else args.workers
        if not 1 <= workers <= MAX_WORKERS:
            _error(f"{args.experiment}: --workers: must be from 1 to {MAX_WORKERS}, got {workers}")
            return EXIT_INPUT
        if not (args.trial_cpus > 0 and args.trial_gpus >= 0):
            _error(f"{args.experiment}: --trial-cpus must be > 0 and --trial-gpus >= 0")
            return EXIT_INPUT
        if args.ray is not None and not args.ray.strip():
            _error(f"{args.experiment}: --ray: give a cluster's address (HOST:PORT), auto or local")
            return EXIT_INPUT
        ray = RayOptions(args.ray.strip(), args.trial_cpus, args.trial_gpus) if args.ray else None
        if ray is None and workers == 1:  # trials train in this process: its seeds on every core
            present_cores(cores())
        sweep = load_sweep(args.experiment)
        out = _out_dir(args, sweep)
        if out is None:
            return EXIT_INPUT
        progress = sys.stderr.isatty() if args.progress is None else args.progress
        try:
            summary = run_sweep(sweep, out, workers=workers, resume=args.resume, data_dir=args.data_dir, progress=progress, ray=ray, vmap=not args.no_vmap, figure_format=args.format)
        except KeyboardInterrupt:
            _error(f"interrupted; finished trials are kept in {out}/trials: continue with --resume")
            return 130
    per = "per setting and rule" if summary["target"] == "experiment" else "per setting"
    print(f"sweep of {summary['file']}: {summary['metric']} over seeds, {per}")
    for line in summary_lines(summary):
        print(line)
    if summary.get("partial"):
        return EXIT_OK
    print(f"  results in {out}/ (results.csv, summary.json, summary.{args.format})")
    entries = summary["settings"]
    if entries and all(e["diverged"] == e["seeds"] for e in entries):
        failed = "diverged" if summary["target"] == "experiment" else "did not converge"
        _error(f"{out}: every trial {failed}; see {out}/summary.json")
        return EXIT_NUMERICAL
    return EXIT_OK


def _cmd_check(args) -> int:
    """Validate without running: a model file (the resolved circuit), an experiment file
    (network, data, training, rules), and either's [sweep] table (every setting)."""
    from .io.errors import read_toml
    from .io.model import is_experiment

    table = read_toml(Path(args.model), "model")
    sweep = _sweep_line(args.model) if "sweep" in table else None  # every setting valid before anything is printed
    (_check_experiment if is_experiment(table) else _check_model)(args.model)
    if sweep:
        print(sweep)
    return EXIT_OK


def _check_experiment(path) -> None:
    from .io.experiment import load_experiment

    e = load_experiment(path)
    known = e.known_steps()  # MNIST's own size is known once it is read
    steps = f"{known} updates" if known else f"{e.training.steps} updates" if e.training.steps else f"{e.training.epochs:g} epochs"
    print(f"{e.path}: valid experiment file")
    print(f"  name: {e.name}" + (f" - {e.description}" if e.description else "") + f"; seed: {e.seed}")
    print(f"  network: sizes {e.network.sizes}, {', '.join(e.network.nonlinearities)}")
    sizes = [f"{n} {what}" for n, what in ((e.data.n_train, "training"), (e.data.n_test, "test")) if n]
    print(f"  data: {e.data.kind}" + (f", {' / '.join(sizes)} samples" if sizes else ""))
    t = e.training
    print(f"  training: {steps}, mini-batches of {t.batch_size}, lr {t.lr:g}, evaluation every {t.eval_every} updates, {t.dtype}")
    print(f"  rules: {', '.join(f'{label} ({o.rule})' if o.rule != label else label for label, o in e.rules.items())}")


def _sweep_line(path) -> str:
    from .io.sweep import load_sweep

    sw = load_sweep(path)
    spec, swept = sw.spec, ", ".join(sw.spec.paths) or "nothing (seeds only)"
    if spec.mode == "optuna":
        return f"  [sweep]: valid; an Optuna search of rule {next(iter(sw.base['rules']))}: {spec.samples} settings x {spec.seeds} seeds, {sw.metric} over {swept}"
    return f"  [sweep]: valid; {spec.mode}: {spec.n_settings()} settings x {spec.seeds} seeds = {len(sw.trials)} trials, over {swept}"


def _check_model(path) -> None:
    from .io.model import load_model

    m = load_model(path, stabilize=False)
    print(f"{m.path}: valid")
    print(f"  name: {m.name}" + (f" - {m.description}" if m.description else ""))
    print(f"  kind: {m.kind}; sizes: {m.sizes}; master seed: {m.seed}")
    print(f"  options: {', '.join(f'{k}={v}' for k, v in m.options.model_dump().items())}")
    specs = m.cls.array_specs(m.sizes, m.options)
    print("  arrays:")
    for name, spec in specs.items():
        a = m.arrays[name]
        seed = f", seed {a.seed}" if a.seed is not None else ""
        stab = ", SSA-stabilised at simulate" if a.stabilize else ""
        print(f"    {name:<10} {spec.role:<6} shape {str(a.value.shape):<12} {a.source}{seed}{stab}")
    for name, p in m.plasticity.items():
        gate = "always on" if p["gate"] is None else f"gate {p['gate']}"
        print(f"  plastic: {name:<10} tau_w {p['tau_w']:g}, {gate}")
    jumps = m.circuit.jump_times()
    if jumps:
        shown = ", ".join(f"{t:g}" for t in jumps[:8]) + (", ..." if len(jumps) > 8 else "")
        print(f"  jump times: {shown} ({len(jumps)})")
    state = m.circuit.state_shapes()
    print(f"  state: {', '.join(f'{k}{v}' for k, v in state.items())} ({m.circuit.state_size} per sample)")
    print(f"  simulation: {', '.join(f'{k}={v}' for k, v in m.simulation.kwargs().items())}")


def _cmd_list(args) -> int:
    from . import plugins
    from .core.circuit import REGISTRY

    plugins.load(plugins.CIRCUITS)
    plugins.load(plugins.RULES)
    if args.rules:
        from .learning.rules.listing import rules_markdown, rules_text

        print(rules_markdown() if args.markdown else rules_text())
        return EXIT_OK
    for kind in sorted(REGISTRY):
        info = REGISTRY[kind].info()
        print(f"{info.kind}: {info.summary}")
        print(f"  state: {info.state}")
        for k, v in info.options.items():
            print(f"  option {k}: {v}")
        for k, v in info.arrays.items():
            print(f"  array  {k}: {v}")
        print()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a reader that went away shows here, not as a traceback at exit
        return code
    except BrokenPipeError:  # the reader went away (`neurodyn list | head`): stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return EXIT_PIPE


def _main(argv: list[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a bad argument (one line, exit 2)
        return int(done.code or 0)
    if args.command is None:
        _parser().print_help()
        return EXIT_INPUT
    if getattr(args, "max_memory", None):
        import os

        before = os.environ.get("NEURODYN_MAX_MEMORY")
        os.environ["NEURODYN_MAX_MEMORY"] = args.max_memory  # worker processes inherit it
        try:
            return _run(args)
        finally:
            if before is None:
                del os.environ["NEURODYN_MAX_MEMORY"]
            else:
                os.environ["NEURODYN_MAX_MEMORY"] = before
    return _run(args)


def _compilation_cache(jax) -> None:
    """JAX's persistent compilation cache in the user's cache folder, so that a command run
    again skips most compilation: ``$NEURODYN_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/neurodyn/jax`` (``~/.cache/neurodyn/jax``);
    ``NEURODYN_CACHE_DIR=off`` turns it off. An unusable folder only costs the speed-up."""
    import os

    folder = os.environ.get("NEURODYN_CACHE_DIR")
    if folder == "off" or jax.config.jax_compilation_cache_dir:
        return
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "neurodyn", "jax")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


def _run(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)  # analysis runs in float64 (README: CLI reference)
    _compilation_cache(jax)
    from . import circuits  # noqa: F401  (registers the kinds)
    from .io.errors import ModelError, NumericalError, WorkerLost
    from .learning.data import DataError

    commands = {
        "simulate": _cmd_simulate, "stability": _cmd_stability, "train": _cmd_train, "sweep": _cmd_sweep, "check": _cmd_check, "list": _cmd_list,
    }
    from .io.interrupt import deferred

    try:
        with deferred(), contextlib.ExitStack() as args.held:  # the output folder the command holds
            return commands[args.command](args)
    except (ModelError, DataError) as err:
        _error(str(err))
        return EXIT_INPUT
    except NumericalError as err:
        _error(str(err))
        return EXIT_NUMERICAL
    except WorkerLost as err:
        _error(str(err))
        return EXIT_BUG
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        raise  # not a bug: main() stops quietly
    except Exception as err:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        _error(f"internal error (a bug in neurodyn, please report it): {type(err).__name__}: {err}")
        return EXIT_BUG


if __name__ == "__main__":
    raise SystemExit(main())
