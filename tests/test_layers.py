"""The architecture, checked: records -> chat -> kernel -> scorers -> engines -> jobs -> pipeline -> commands -> cli.

A module imports only from its own layer or below, and a job never imports another job (jobs share engines and
lower layers instead). The eval package is one job split over modules.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "flr"

LAYERS = {
    0: ["flr", "flr.errors", "flr.paths", "flr.provenance", "flr.data", "flr.arguments"],  # records, settings
    1: ["flr.chat", "flr.followups", "flr.models"],  # conversations, follow-up sets, model loading
    2: ["flr.logprobs"],  # the kernel
    3: ["flr.scorers", "flr.cache"],  # reward sources and their score cache
    4: [
        "flr.generate",
        "flr.scoring",
        "flr.training",
        "flr.trl_args",
        "flr.patterns",
        "flr.debias",
        "flr.eval.metrics",
        "flr.eval.benchmarks",
        "flr.eval.html",
    ],
    5: [
        "flr.mine",
        "flr.compare",
        "flr.feedback",
        "flr.train",
        "flr.reward_training",
        "flr.eval",
        "flr.audit",
        "flr.serve",
        "flr.rl",
    ],
    6: ["flr.pipeline"],
    7: ["flr.commands", "flr.cli"],
}
JOBS = 5


def unit(module: str) -> tuple[int, str]:
    """(layer, the most specific listed name that contains ``module``)."""
    best = None
    for layer, names in LAYERS.items():
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (layer, name)
    assert best is not None, f"{module} is in no layer: add it to tests/test_layers.py"
    return best


def modules():
    for path in sorted(SRC.rglob("*.py")):
        name = ".".join(["flr", *path.relative_to(SRC).with_suffix("").parts]).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flr"):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("flr")}
        yield name, imported


def test_no_module_imports_from_a_higher_layer_and_no_job_imports_another():
    problems = []
    for name, imported in modules():
        layer, group = unit(name)
        for target in imported:
            t_layer, t_group = unit(target)
            if t_layer > layer:
                problems.append(f"{name} (layer {layer}) imports {target} (layer {t_layer})")
            elif layer == t_layer == JOBS and group != t_group:
                problems.append(f"job {name} imports job {target}")
    assert not problems, "\n".join(problems)


def test_the_check_sees_what_it_should():
    assert unit("flr.eval.runner") == (5, "flr.eval") and unit("flr.eval.metrics") == (4, "flr.eval.metrics")
    assert unit("flr.scorers.followup") == (3, "flr.scorers") and unit("flr.commands.score")[0] == 7
