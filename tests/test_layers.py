"""The architecture, checked on the folders of src/flr:

    plain modules -> records -> followups -> kernel -> scorers -> eval | rl -> training | reports -> jobs
        -> serving -> commands -> cli

A module imports only from its own folder or a folder before it (folders of one rank do not import each other);
each folder's ``__init__`` docstring ends with an ``Imports:`` line naming what its modules may import, and that
line is exactly what they do import; inside jobs/, a job imports no other job but the shared engines (generate,
score), and the pipeline alone composes them all.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "flr"

RANK = {
    "flr": 0,  # the plain modules at the top: errors, arguments, paths, provenance, patterns, perturbations
    "records": 1,
    "followups": 2,
    "kernel": 3,
    "scorers": 4,
    "eval": 5,
    "rl": 5,
    "training": 6,
    "reports": 6,
    "jobs": 7,
    "serving": 8,
    "commands": 9,
    "cli": 10,
}
ENGINES = {"flr.jobs.generate", "flr.jobs.score"}
PUBLIC_API = {"flr"}  # flr/__init__.py re-exports the public API lazily, by name


def folder(module: str) -> str:
    """The unit of ``module`` in RANK: its folder under flr, 'cli' for flr.cli, or 'flr' for a plain module."""
    parts = module.split(".")
    if len(parts) == 1:
        return "flr"
    if parts[1] == "cli":
        return "cli"
    return parts[1] if (SRC / parts[1]).is_dir() else "flr"


def unit(module: str) -> str:
    """How an ``Imports:`` line names ``module``: its folder (``flr.kernel``) or, for a plain one, itself."""
    here = folder(module)
    return ".".join(module.split(".")[:2]) if here == "flr" else f"flr.{here}"


def job(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:3]) if len(parts) >= 3 and parts[1] == "jobs" else None


def imports_of(path: Path) -> set[str]:
    """Every flr module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "flr":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "flr"}
    return found


def modules():
    for path in sorted(SRC.rglob("*.py")):
        name = ".".join(["flr", *path.relative_to(SRC).with_suffix("").parts]).removesuffix(".__init__")
        yield name, imports_of(path)


def declared(package: Path) -> set[str] | None:
    """The names on the ``Imports:`` line of ``package``'s docstring (None without one)."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    lines = [line for line in doc.splitlines() if line.startswith("Imports:")]
    if not lines:
        return None
    names = lines[-1].removeprefix("Imports:").strip()
    return set() if names == "nothing" else {n.strip() for n in names.split(",")}


def problems() -> list[str]:
    out = []
    for name, imported in modules():
        if name in PUBLIC_API:
            continue
        here = folder(name)
        for target in imported:
            there = folder(target)
            if here != there and RANK[there] >= RANK[here]:
                out.append(f"{name} ({here}) imports {target} ({there})")
            mine, theirs = job(name), job(target)
            if mine and theirs and mine != theirs and theirs not in ENGINES and mine != "flr.jobs.pipeline":
                out.append(f"job {name} imports job {target}")
    return out


def docstring_problems() -> list[str]:
    out = []
    used: dict[str, set[str]] = {}
    for name, imported in modules():
        here = folder(name)
        used.setdefault(here, set()).update(unit(t) for t in imported if folder(t) != here)
    for package in sorted(p for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        names = declared(package)
        if names is None:
            out.append(f"{package.name}/__init__.py: no 'Imports:' line in its docstring")
            continue
        actual = used.get(package.name, set())
        if actual - names:
            out.append(f"{package.name}/ imports {sorted(actual - names)}, which its 'Imports:' line does not name")
        if names - actual:
            out.append(f"{package.name}/'s 'Imports:' line names {sorted(names - actual)}, which it does not import")
    return out


def test_no_module_imports_from_a_later_folder_and_no_job_imports_another():
    found = problems()
    assert not found, "\n".join(found)


def test_every_folder_is_ranked_and_its_docstring_names_exactly_what_it_imports():
    for path in sorted(p for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        assert path.name in RANK, f"{path.name}/ is in no rank: add it to tests/test_layers.py"
    found = docstring_problems()
    assert not found, "\n".join(found)


def test_the_check_sees_what_it_should(tmp_path, monkeypatch):
    assert folder("flr.jobs.eval") == "jobs" and folder("flr.errors") == "flr" and folder("flr.cli") == "cli"
    assert folder("flr.records.files") == "records" and unit("flr.records.files") == "flr.records"
    assert unit("flr.errors") == "flr.errors" and unit("flr.kernel.logprobs") == "flr.kernel"
    assert job("flr.jobs.mine") == "flr.jobs.mine" and job("flr.kernel.chat") is None
    # a folder that imports a later one, and a docstring that names too much and too little, are all caught
    fake = tmp_path / "flr"
    for pkg, doc, body in [
        ("kernel", "Imports: flr.errors, flr.records", "from flr.scorers.base import X\nfrom flr.paths import P\n"),
        ("scorers", "Imports: flr.kernel", "from flr.kernel.chat import C\n"),
    ]:
        (fake / pkg).mkdir(parents=True)
        (fake / pkg / "__init__.py").write_text(f'"""{pkg}.\n\n{doc}\n"""\n')
        (fake / pkg / "a.py").write_text(body)
    monkeypatch.setattr(__import__(__name__), "SRC", fake)
    assert problems() == ["flr.kernel.a (kernel) imports flr.scorers.base (scorers)"]
    found = docstring_problems()
    assert any("kernel/ imports ['flr.paths', 'flr.scorers']" in p for p in found), found
    assert any("kernel/'s 'Imports:' line names ['flr.errors', 'flr.records']" in p for p in found), found
    assert not any(p.startswith("scorers/") for p in found), found
