"""Run every ``flr`` command in README.md's bash blocks, as written, with small limits, in a scratch folder.

    python scripts/readme_walkthrough.py                 # all of them, embedded model (2 CPU cores: ~15 min)
    python scripts/readme_walkthrough.py --dry-run       # parse each command only (what the test suite checks)

Limits: ``--limit`` is capped at --limit (2) and training gets ``--max-steps 1``; nothing else is changed. A
command whose line says ``# needs: ...`` (a Hub model, a GPU, a server that does not exit) is listed as skipped with
that reason. Commands run in order in one scratch folder where ``examples/`` points at the repo's, so each sees
the outputs of the ones before it (generate -> mine -> train -> compare). Exit status: the number of failures.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMITED = ("score", "eval", "audit", "generate", "mine", "compare", "select", "fit")
SHELL_VARIABLES = {"P": "examples/data/pairs.jsonl"}  # set by the README's own lines (P=...) before use
MIN_LIMITS = {"fit": 12, "select": 40}  # fitting needs >= 10 pairs; selection ranks on the length-matched ones


def readme_commands(path: Path = REPO / "README.md") -> list[tuple[str, str | None]]:
    """``[(command, reason to skip or None)]`` for each ``flr`` line of the README's bash blocks."""
    text = path.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines, current = [], ""
        for raw in block.splitlines():
            current += raw.rstrip("\\").strip() + " " if raw.rstrip().endswith("\\") else raw.strip()
            if not raw.rstrip().endswith("\\"):
                lines.append(current.strip())
                current = ""
        for line in lines:
            if not line.startswith("flr "):
                continue
            command, _, comment = line.partition("#")
            needs = re.search(r"needs: ([^#]+)", comment)
            out.append((command.strip(), needs.group(1).strip() if needs else None))
    return out


def with_limits(command: str, limit: int) -> list[str]:
    """The command's argv with --limit capped and one training step."""
    for name, value in SHELL_VARIABLES.items():
        command = command.replace(f"${name}", value)
    argv = shlex.split(command)
    sub = argv[1] if len(argv) > 1 else ""
    words = set(argv[1:3])
    if words & set(LIMITED):
        limit = max([limit] + [MIN_LIMITS[w] for w in words if w in MIN_LIMITS])
        if "--limit" in argv:
            i = argv.index("--limit")
            argv[i + 1] = str(min(int(argv[i + 1]), limit))
        elif sub != "followups" or words & {"select", "fit"}:
            argv += ["--limit", str(limit)]
    if sub == "train" and "--max-steps" not in argv and "--help" not in argv:
        argv += ["--max-steps", "1"]
    return argv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--dry-run", action="store_true", help="parse each command with flr's parser, run nothing")
    args = ap.parse_args()
    commands = readme_commands()
    if args.dry_run:
        from flr.cli import build_parser

        failures = 0
        for command, _ in commands:
            argv = with_limits(command, args.limit)[1:]
            try:
                build_parser(argv).parse_args(argv)
            except SystemExit:
                failures += 1
                print(f"FAIL (does not parse): {command}")
        print(f"{len(commands) - failures}/{len(commands)} README commands parse")
        return failures
    failures = 0
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        os.symlink(REPO / "examples", Path(tmp) / "examples")
        for command, needs in commands:
            if needs:
                print(f"SKIP ({needs}): {command}")
                continue
            argv = with_limits(command, args.limit)
            start = time.perf_counter()
            run = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            status = "ok" if run.returncode == 0 else f"FAIL rc={run.returncode}"
            print(f"{status} ({seconds:.0f} s): {shlex.join(argv)}", flush=True)
            if run.returncode != 0:
                failures += 1
                print("   " + "\n   ".join((run.stderr or run.stdout).strip().splitlines()[-5:]))
    print(f"{len(commands) - failures} of {len(commands)} README commands ran or were skipped with a reason")
    return failures


if __name__ == "__main__":
    sys.exit(main())
