"""Experiment files (TOML) for ``neurodyn train``: network, data, training, and the rules
to compare, each with its options. Validated like model files: every problem is a
one-line :class:`ModelError` naming the file and the key.

```toml
name = "linear_regression"
seed = 0                                   # network init, feedback init, data order (--seed overrides)

[network]
sizes = [30, 20, 10]
nonlinearities = ["linear", "linear"]      # one per layer; "softmax" allowed last
init = "uniform"                           # uniform: W ~ U(-s, s); normal: W ~ N(0, s^2 / fan-in);
                                           # data: the student's weights of kind student_teacher
init_scale = 0.01                          # s
biases = true                              # false: biases stay zero (the plastic circuits need false)
loss = "squared_error"                     # or "cross_entropy"

[data]
kind = "linear_regression"                 # linear_regression | nonlinear_regression | student_teacher | mnist
n_train = 2000
n_test = 500
# nonlinear_regression: teacher_scale; student_teacher: distance = 8.0, condition = 0.4;
# mnist: task = "classification" | "autoencoder", data_dir, pca = 50 (principal components)

[training]
lr = 1e-2                                  # every rule's rate unless its table sets lr
weight_decay = 0.0
clip = 10.0                                # max ||delta_l|| per sample, hidden layers (omit: no clipping)
clip_output = false                        # clip the output error too (default false, as 7.7.1)
batch_size = 1
steps = 2000                               # or epochs = 3
eval_every = 100
eval_samples = 500                         # training samples for the train loss
probe_samples = 500                        # the first of those for angles and steady states (default: all)
gauss_newton_angles = true                 # angle of each hidden update to the Gauss-Newton-target update
null_space_samples = 100                   # probe samples for the null-space fraction of each update (0: off)
dtype = "float64"                          # or "float32": network, rules and data in single precision

[rules.bp]
[rules.fa_random]
rule = "fa"                                # the registered rule (default: the label)
feedback = "random"                        # random | neg_transpose | ssa
feedback_scale = 0.5
[rules.di]
leak = 0.01
controller = "nonlinear"
method = "equilibrium"                     # or "ode" (integration) or "continuation"
feedback = "neg_transpose"
[rules.mixture]
rule = "dendritic_mixture"                 # a plastic circuit: weights are ODE state
phases = "two"
```

Each rule's table takes only the options of that rule (``neurodyn list --rules``,
``docs/rules.md``); any other key is an error naming the rule and the key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .. import plugins
from ..core.nonlinearities import parse
from ..learning.losses import LOSSES
from ..learning.rules import RULES, RuleOptions
from .errors import ModelError, check_keys, read_toml, suggest
from .model import MAX_COUNT, MAX_SEED, _pydantic_error
from .overrides import apply, describe
from .resources import check_memory, training_memory
from .toml_write import dumps

TOP_KEYS = ("name", "description", "seed", "network", "data", "training", "rules", "sweep")
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class NetworkSpec(BaseModel):
    model_config = STRICT
    sizes: list[int]
    nonlinearities: list[str]
    init_scale: float = Field(0.01, gt=0)
    init: Literal["uniform", "normal", "data"] = "uniform"
    biases: bool = True
    loss: str = "squared_error"

    @model_validator(mode="after")
    def _check(self):
        if len(self.sizes) < 2 or any(not 0 < s <= MAX_COUNT for s in self.sizes):
            raise ValueError(f"sizes needs >= 2 positive layer sizes (at most {MAX_COUNT}), lowest first")
        if len(self.nonlinearities) != len(self.sizes) - 1:
            raise ValueError(f"nonlinearities needs one name per layer ({len(self.sizes) - 1})")
        for i, name in enumerate(self.nonlinearities):
            if not (name == "softmax" and i == len(self.nonlinearities) - 1):
                parse(name)
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss '{self.loss}' (choose from {', '.join(LOSSES)})")
        if (self.loss == "cross_entropy") != (self.nonlinearities[-1] == "softmax"):
            raise ValueError("cross_entropy goes with a softmax output, squared_error with any other")
        return self


class DataSpec(BaseModel):
    model_config = STRICT
    kind: Literal["linear_regression", "nonlinear_regression", "student_teacher", "mnist"]
    n_train: int | None = Field(None, gt=0, le=MAX_COUNT)
    n_test: int | None = Field(None, gt=0, le=MAX_COUNT)
    task: Literal["classification", "autoencoder"] = "classification"
    teacher_scale: float = Field(0.01, gt=0)
    data_dir: str | None = None
    pca: int | None = Field(None, gt=0, le=MAX_COUNT)
    distance: float = Field(8.0, ge=0)
    condition: float = Field(0.4, ge=0)

    @model_validator(mode="after")
    def _pca(self):
        if self.pca is not None and (self.kind != "mnist" or self.task != "classification"):
            raise ValueError("pca applies to kind = \"mnist\" with task = \"classification\"")
        return self


class TrainingSpec(BaseModel):
    model_config = STRICT
    lr: float = Field(gt=0)
    weight_decay: float = Field(0.0, ge=0)
    clip: float | None = Field(None, gt=0)
    clip_output: bool = False
    batch_size: int = Field(1, gt=0, le=MAX_COUNT)
    steps: int | None = Field(None, gt=0, le=MAX_COUNT)
    epochs: float | None = Field(None, gt=0, le=1e6)
    eval_every: int = Field(100, gt=0, le=MAX_COUNT)
    eval_samples: int = Field(500, gt=0, le=MAX_COUNT)
    probe_samples: int | None = Field(None, gt=0, le=MAX_COUNT)
    gauss_newton_angles: bool = True
    null_space_samples: int = Field(100, ge=0, le=MAX_COUNT)
    dtype: Literal["float64", "float32"] = "float64"

    @model_validator(mode="after")
    def _length(self):
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of steps or epochs")
        return self


#: most evaluations one training may record (each one a row per rule in metrics.csv)
MAX_EVALUATIONS = 1_000_000

#: the sections of an experiment file with their schemas
SPECS = {"network": NetworkSpec, "data": DataSpec, "training": TrainingSpec}


class Experiment(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    path: Path
    name: str
    description: str = ""
    seed: int = 0
    network: NetworkSpec
    data: DataSpec
    training: TrainingSpec
    rules: dict[str, RuleOptions]
    resolved: str | None = None  # the file with command-line overrides applied (TOML)

    @property
    def text(self) -> str:
        """The experiment as run: the file's text, or the resolved file when options were
        set from the command line (checkpoints compare it on --resume)."""
        return self.resolved if self.resolved is not None else self.path.read_text()

    def known_steps(self) -> int | None:
        """:meth:`total_steps` where the data's size is known before it is loaded (every
        data set but MNIST without ``n_train``, whose size is the file's), else None; an
        input error as there."""
        if self.data.kind == "mnist" and self.data.n_train is None:
            return None
        return self.total_steps(self.data.n_train or 2000)

    def total_steps(self, n_train: int) -> int:
        """Updates of the run on ``n_train`` samples (at least one); an input error if no
        mini-batch fits in the data, or if the run would record more than
        :data:`MAX_EVALUATIONS` evaluations."""
        t = self.training
        if t.batch_size > n_train:
            raise ModelError(self.path, "[training].batch_size", f"{t.batch_size} is more than the {n_train} training samples, so no mini-batch can be drawn; use a smaller batch_size or more data")
        total = t.steps if t.steps is not None else int(math.ceil(t.epochs * (n_train // t.batch_size)))
        if total // t.eval_every > MAX_EVALUATIONS:
            raise ModelError(self.path, "[training].eval_every", f"{total} updates with an evaluation every {t.eval_every} would record more than {MAX_EVALUATIONS} evaluations; evaluate less often")
        return total


def read_table(path: str | Path) -> tuple[Path, dict]:
    """The experiment (or model) file's TOML table, unvalidated: ``(file, table)``."""
    file = Path(path)
    return file, read_toml(file, "experiment")


def load_experiment(path: str | Path, overrides: dict | None = None) -> Experiment:
    """The validated experiment of a file (a ``[sweep]`` table is left to :mod:`.sweep`),
    with ``overrides`` (dotted paths, :mod:`.overrides`) applied first; the experiment then
    carries its resolved text (:attr:`Experiment.text`)."""
    file, table = read_table(path)
    if not overrides:
        return experiment_from_table(file, table)
    table = apply(table, overrides, file)
    return experiment_from_table(file, table).model_copy(update={"resolved": dumps(table, header=describe(file, overrides))})


def experiment_from_table(file: Path, data: dict) -> Experiment:
    """The validated experiment of a TOML table read from ``file`` (errors name ``file``)."""
    check_keys(file, "", data, TOP_KEYS)
    sections = {}
    for key, cls in SPECS.items():
        table = data.get(key)
        if not isinstance(table, dict):
            raise ModelError(file, f"[{key}]", f"missing table; add [{key}] (see the experiment file reference)")
        check_keys(file, f"[{key}]", table, cls.model_fields)
        try:
            sections[key] = cls(**table)
        except ValidationError as err:
            raise _pydantic_error(file, f"[{key}]", err) from None
    rules_table = data.get("rules")
    if not isinstance(rules_table, dict) or not rules_table:
        raise ModelError(file, "[rules]", "name at least one rule, e.g. [rules.bp]")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ModelError(file, "seed", f"must be an integer from 0 to 2^63 - 1, got {seed!r}")
    rules = {label: _rule_options(file, label, table, sections["network"]) for label, table in rules_table.items()}
    if sections["data"].kind != "mnist" and sections["network"].loss != "squared_error":
        raise ModelError(file, "[data].kind", f"{sections['data'].kind} is a regression task: use [network] loss = \"squared_error\" and no softmax")
    if sections["network"].init == "data" and sections["data"].kind != "student_teacher":
        raise ModelError(file, "[network].init", "init = \"data\" takes the student's weights from [data] kind = \"student_teacher\"; use uniform or normal")
    _check_training_memory(file, sections, len(rules))
    return Experiment(
        path=file, name=str(data.get("name", file.stem)), description=str(data.get("description", "")), seed=seed,
        rules=rules, **sections,
    )


def _check_training_memory(file, sections: dict, n_rules: int) -> None:
    """The training must fit in memory (:func:`training_parts`)."""
    check_memory(file, training_parts(sections["network"], sections["data"], sections["training"], n_rules), "this training")


def training_parts(network, data, training, n_rules: int) -> dict:
    """The estimated memory of one training, by part (:func:`~.resources.training_memory`):
    data sets at their requested (or default) sizes, MNIST at most its 10,000 test-file
    images."""
    n, d, t = network, data, training
    n_data = 10_000 if d.kind == "mnist" else (d.n_train or 2000) + (d.n_test or 1000)
    n_eval = max(min(t.eval_samples, n_data), d.n_test or 1000, t.batch_size)
    itemsize = 4 if t.dtype == "float32" else 8
    return training_memory(n.sizes, n_rules, n_data, t.batch_size, t.eval_every, n_eval, itemsize)


def _rule_options(file, label: str, table, network: NetworkSpec) -> RuleOptions:
    """The validated options of ``[rules.<label>]``: the rule named by ``rule`` (default: the
    label) from the registry, with only the keys its ``Options`` declares."""
    where = f"[rules.{label}]"
    if not isinstance(table, dict):
        raise ModelError(file, where, "must be a table")
    table = {"rule": label, **table}
    name = table["rule"]
    if isinstance(name, str) and name not in RULES:
        plugins.load(plugins.RULES)
    if not isinstance(name, str) or name not in RULES:
        key = f"{where}.rule" if "rule" in table and name != label else where
        raise ModelError(file, key, f"unknown rule '{name}'{suggest(str(name), RULES)} (neurodyn list --rules shows them)")
    cls = RULES[name]
    allowed = cls.Options.keys()
    for key in table:
        if key in cls.Options.derived:
            raise ModelError(file, f"{where}.{key}", f"rule '{name}' takes {key} from {cls.Options.derived[key]}; remove it")
        if key not in allowed:
            raise ModelError(file, f"{where}.{key}", f"rule '{name}' has no option '{key}'{suggest(key, allowed)} (neurodyn list --rules shows each rule's options)")
    try:
        options = cls.Options(**table)
    except ValidationError as err:
        bad = _pydantic_error(file, where, err)
        raise ModelError(file, bad.key, f"rule '{name}': {bad.message}") from None
    L = len(network.sizes) - 1
    if L < cls.min_layers:
        need = cls.min_layers
        raise ModelError(file, f"{where}.rule", f"{name} needs a network of at least {need} layers ({need - 1} hidden); this one has {L}")
    try:
        options.check_network(network)
    except ValueError as err:
        raise ModelError(file, where, str(err)) from None
    return options
