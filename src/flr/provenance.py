"""What produced a result: command line, package versions, device: written into every summary.json."""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = ("flr", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "vllm")


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
        "python": platform.python_version(),
        "device": device,
        "config": {type(c).__name__: asdict(c) for c in configs if is_dataclass(c)},
    }
