"""The architecture, checked on the folders of src/flr:

    plain modules -> kernel -> scorers -> eval | training -> jobs -> serving -> commands -> cli

A module imports only from its own folder or a folder before it; eval and training sit side by side and do not
import each other; inside jobs/, a job imports no other job but the shared engines (generate, score), and the
pipeline alone composes them all.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "flr"

RANK = {
    "flr": 0,  # the plain modules at the top: records, followups, errors, provenance, arguments, paths, rl
    "kernel": 1,
    "scorers": 2,
    "eval": 3,
    "training": 3,
    "jobs": 4,
    "serving": 5,
    "commands": 6,
    "cli": 7,
}
ENGINES = {"flr.jobs.generate", "flr.jobs.score"}
SHORT_PATHS = {"flr", "flr.rl"}  # re-export the public API from deeper folders, lazily or by name


def folder(module: str) -> str:
    """The unit of ``module`` in RANK: its folder under flr, or 'flr' for a plain top-level module."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "cli":
        return "cli" if len(parts) > 1 else "flr"
    return parts[1] if (SRC / parts[1]).is_dir() else "flr"


def job(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:3]) if len(parts) >= 3 and parts[1] == "jobs" else None


def modules():
    for path in sorted(SRC.rglob("*.py")):
        name = ".".join(["flr", *path.relative_to(SRC).with_suffix("").parts]).removesuffix(".__init__")
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "flr":
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.split(".")[0] == "flr"}
        yield name, imported


def problems() -> list[str]:
    out = []
    for name, imported in modules():
        if name in SHORT_PATHS:
            continue
        here = folder(name)
        for target in imported:
            there = folder(target)
            if here != there and (RANK[there] > RANK[here] or RANK[there] == RANK[here]):
                out.append(f"{name} ({here}) imports {target} ({there})")
            mine, theirs = job(name), job(target)
            if mine and theirs and mine != theirs and theirs not in ENGINES and mine != "flr.jobs.pipeline":
                out.append(f"job {name} imports job {target}")
    return out


def test_no_module_imports_from_a_later_folder_and_no_job_imports_another():
    found = problems()
    assert not found, "\n".join(found)


def test_every_folder_is_ranked_and_says_what_it_holds():
    for path in sorted(p for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        assert path.name in RANK, f"{path.name}/ is in no rank: add it to tests/test_layers.py"
        doc = ast.get_docstring(ast.parse((path / "__init__.py").read_text()))
        assert doc and "import" in doc.lower(), f"{path.name}/__init__.py: a docstring that says what it may import"


def test_the_check_sees_what_it_should():
    assert folder("flr.eval.runner") == "eval" and folder("flr.records") == "flr" and folder("flr.cli") == "cli"
    assert folder("flr.kernel.logprobs") == "kernel" and folder("flr.commands.score") == "commands"
    assert job("flr.jobs.mine") == "flr.jobs.mine" and job("flr.eval.runner") is None
