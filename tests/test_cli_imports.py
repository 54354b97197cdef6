"""``flr --help`` and ``flr <command> --help`` answer without importing torch, transformers or TRL (each command's
heavy modules load inside its ``main``), and one parser class (flr.arguments.ConfigParser) turns dataclass fields
into flags and a ``--config`` YAML into their defaults without argparse's private attributes."""

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from flr.arguments import ConfigParser, split_list
from flr.errors import FLRError

SRC = Path(__file__).resolve().parents[1] / "src" / "flr"
HEAVY = ("torch", "transformers", "trl")

# each command's help, and flags it must name (the dashed spelling is shown first)
HELPS = {
    "": ["COMMAND", "score", "eval", "train", "pipeline", "--version"],
    "score": ["--batch-size", "--followups", "--model", "--length-debias", "--config", "INPUT"],
    "eval": ["--benchmarks", "--scorers", "--length-ratio", "--model"],
    "mine": ["--candidates", "--min-margin", "--length-band", "--scorer"],
    "generate": ["--prompts", "--k", "--temperature", "--backend"],
    "compare": ["--candidate", "--judge", "--prompts"],
    "audit": ["--perturbations", "--scorers", "INPUT"],
    "followups": ["show", "select", "fit", "split"],
    "followups show": ["--followups", "--categories"],
    "followups select": ["--benchmark", "--top", "--rank-on"],
    "followups fit": ["--benchmarks", "--control-length"],
    "followups split": ["--seed", "--followups"],
    "serve": ["--port", "--host", "--api-key", "--max-records"],
    "report": ["--runs", "RUN_DIR", "--output-dir"],
    "pipeline": ["--config", "--stages", "--output-dir"],
    "demo": ["--output-dir", "--model"],
    "feedback": ["rewrite"],
    "feedback rewrite": ["--input", "--method", "--model"],
    "train": ["dpo", "kto", "grpo", "feedback", "flr", "rm"],
}

PROBE = """
import contextlib, io, json, sys
from flr.cli import main

out = {}
for command in json.loads(sys.argv[1]):
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        try:
            main([*command.split(), "--help"])
        except SystemExit:
            pass
    out[command] = {"help": text.getvalue(), "heavy": sorted(m for m in HEAVY if m in sys.modules)}
print(json.dumps(out))
""".replace("HEAVY", repr(HEAVY))


def test_help_of_every_command_loads_no_torch_transformers_or_trl():
    """One process runs ``flr --help`` and then each command's help in turn, and after each lists which of torch,
    transformers and TRL are loaded: the first command that loads one is named."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(HELPS))],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    found = json.loads(done.stdout.splitlines()[-1])
    for command, words in HELPS.items():
        assert found[command]["heavy"] == [], f"'flr {command} --help' imported {found[command]['heavy']}"
        missing = [w for w in words if w not in found[command]["help"]]
        assert not missing, f"'flr {command} --help' does not name {missing}:\n{found[command]['help']}"
    assert "--max-length MAX_LENGTH, --max_length MAX_LENGTH" in found["score"]["help"]  # both spellings, dashed first


def test_a_bad_flag_value_fails_before_torch_loads(tmp_path):
    code = (
        "import sys\nfrom flr.cli import main\nstatus = main(sys.argv[1:])\n"
        f"print(status, sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    (tmp_path / "c.yaml").write_text("bogus_key: 1\n")
    argv = ["score", str(tmp_path / "a.jsonl"), "--config", str(tmp_path / "c.yaml")]
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert done.stdout.strip() == "2 []", done.stdout + done.stderr
    assert "unknown keys ['bogus_key']" in done.stderr


@dataclass
class Toy:
    batch_size: int = field(default=8, metadata={"help": "Records per batch."})
    mode: Literal["fast", "slow"] = field(default="fast", metadata={"help": "How."})
    names: list[str] | None = field(default=None, metadata={"help": "Names, comma- or space-separated."})
    details: bool = field(default=False, metadata={"help": "More."})
    cache: bool = field(default=True, metadata={"help": "Use the cache."})
    output_dir: str | None = field(default=None, metadata={"help": "Where.", "aliases": ["-o"]})
    rate: float = 0.5


def _root():
    root = ConfigParser(prog="toy")
    commands = root.add_subparsers(dest="command")
    built = []

    def build(parser):
        built.append(parser.prog)
        parser.add_dataclass(Toy)
        parser.add_config_flag()

    commands.add_parser("run", help="Run.", build=build)
    return root, built


def test_config_parser_makes_flags_of_fields_and_builds_a_command_only_when_used():
    root, built = _root()
    assert "Run." in root.format_help() and built == []  # the root's help does not build the command
    args = root.parse_args(["run", "--batch_size", "4", "--mode", "slow", "--names", "a,b", "c", "--details"])
    assert built == ["toy run"]
    assert (args.batch_size, args.mode, split_list(args.names)) == (4, "slow", ["a", "b", "c"])
    assert (args.details, args.cache) == (True, True)
    args = root.parse_args(["run", "--batch-size", "2", "--no-cache", "-o", "x", "--details", "false"])
    assert (args.batch_size, args.cache, args.output_dir, args.details) == (2, False, "x", False)
    with pytest.raises(SystemExit):
        root.parse_args(["run", "--mode", "medium"])
    run = root.parse_args(["run"]).config_parser
    assert run.flag("cache").option_strings == ["--cache"] and run.flag("output_dir").option_strings[:2] == [
        "--output-dir",
        "--output_dir",
    ]


def test_config_file_values_are_defaults_flags_win_env_is_set_and_unknown_keys_are_one_error(tmp_path, monkeypatch):
    monkeypatch.delenv("FLR_TOY_ENV", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text("batch-size: 3\nrate: '5e-5'\nnames: [a, b]\noutput_dir: y\nenv:\n  FLR_TOY_ENV: 1\n")
    root, _ = _root()
    argv = ["run", "--config", str(path), "--output-dir", "z"]
    args = root.apply_config(root.parse_args(argv), argv, "toy run")
    assert (args.batch_size, args.rate, args.names, args.output_dir) == (3, 5e-5, ["a", "b"], "z")
    assert os.environ["FLR_TOY_ENV"] == "1"
    path.write_text("bogus: 1\nbatch_sise: 2\nmode: fast\n")
    root, _ = _root()
    argv = ["run", "--config", str(path)]
    with pytest.raises(FLRError, match=r"unknown keys \['batch_sise', 'bogus'\]; see 'toy run --help'"):
        root.apply_config(root.parse_args(argv), argv, "toy run")
    path.write_text("mode: medium\n")
    with pytest.raises(FLRError, match="'medium' is not one of"):
        root.apply_config(root.parse_args(argv), argv, "toy run")


def test_the_config_path_uses_no_private_argparse_attribute():
    private = {"_actions", "_option_string_actions", "_root", "_subparsers", "_name_parser_map", "_defaults"}
    files = [SRC / "arguments.py", SRC / "cli.py", *sorted((SRC / "commands").glob("*.py"))]
    files += [SRC / "training" / "args.py", SRC / "training" / "__init__.py"]
    for path in files:
        used = {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)} & private
        assert not used, f"{path.relative_to(SRC)} uses {sorted(used)}"
