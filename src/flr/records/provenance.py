"""What produced a result: command line, package versions, device: written into every summary.json."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("flr", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "vllm")


@cache
def git_commit() -> str | None:
    """The commit of the flr checkout this code runs from (``+dirty`` with uncommitted changes); None when flr
    is installed from a wheel."""
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else None


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def provenance(*configs: Any) -> dict[str, Any]:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    return {
        "command": " ".join(["flr", *sys.argv[1:]])
        if sys.argv and sys.argv[0].endswith("flr")
        else " ".join(sys.argv),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "device": device,
        "config": {type(c).__name__: asdict(c) for c in configs if is_dataclass(c)},
    }


def write_summary(folder: str | os.PathLike, summary: dict[str, Any], *configs: Any) -> dict[str, Any]:
    """The one way a job records what it did: ``<folder>/summary.json`` holds the job's results and, under
    ``provenance``, the command, time, versions, git commit, device and every config it ran with. Returns what it
    wrote."""
    from flr.records import SUMMARY_FILE, write_json

    written = {**summary, "provenance": provenance(*configs)}
    write_json(Path(folder) / SUMMARY_FILE, written)
    return written


def provenance_text(summary: dict[str, Any]) -> str:
    """One line of a report saying what ran: flr's version, the commit, the command and the device."""
    prov = summary.get("provenance", {})
    return (
        f"flr {prov.get('versions', {}).get('flr', '?')} (commit {str(prov.get('git_commit') or '-')[:12]}); "
        f"command: `{prov.get('command', '')}`; device: {prov.get('device', '?')}"
    )


def variant_text(summary: dict[str, Any]) -> str:
    """One line of a report saying which reward variant produced its numbers: FLR's follow-up set and rule
    (contrast, calibration, length term) and any length or style debiasing, from the configs the run recorded."""
    configs = summary.get("provenance", {}).get("config", {})
    scorer = configs.get("ScorerConfig", {})
    parts = [f"follow-ups `{scorer.get('followups') or 'default'}`"]
    if scorer.get("statistic", "mean") != "mean":
        rule = "the authors' code's rule: mean raw logits" if scorer["statistic"] == "authors" else "summed log-probs"
        parts.append(f"statistic `{scorer['statistic']}` ({rule})")
    if scorer.get("contrast", "none") != "none":
        source = f" from `{scorer['contrast_file']}`" if scorer.get("contrast_file") else ""
        parts.append(f"contrast `{scorer['contrast']}`{source} (reward minus reward of the edited response)")
    if scorer.get("calibration", "none") != "none":
        parts.append(f"calibration `{scorer['calibration']}`")
    if scorer.get("length_term"):
        parts.append("fitted length term")
    for config in configs.values():
        for flag in ("length_debias", "style_debias"):
            if config.get(flag, "none") != "none":
                parts.append(f"{flag.replace('_', '-')} `{config[flag]}` (every scorer but length)")
    plain = len(parts) == 1
    return "reward variant: " + "; ".join(parts) + (" (the paper's rule)" if plain else "")
