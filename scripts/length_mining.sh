#!/usr/bin/env bash
# Plain vs length-banded mining on the tiny pipeline (docs/RESULTS.md §2): the same 96 candidates (24 prompts x 4, 256 new
# tokens), scored once; each variant trains its own LoRA DPO policy and is compared with the base.
#   bash scripts/length_mining.sh          # 2 CPU cores: about 25 minutes alone
set -euo pipefail
cd "$(dirname "$0")/.."
flr pipeline --config examples/tiny-pipeline-long.yaml
mkdir -p runs/tiny-long-band/mine
[ -d runs/tiny-long-band/generate ] || cp -r runs/tiny-long/generate runs/tiny-long-band/
[ -f runs/tiny-long-band/mine/scored.jsonl ] || cp runs/tiny-long/mine/scored.jsonl runs/tiny-long-band/mine/  # scores reused
flr pipeline --config examples/tiny-pipeline-band.yaml
python - <<'PY'
import json
for run in ("runs/tiny-long", "runs/tiny-long-band"):
    mine = json.load(open(f"{run}/mine/summary.json"))["stats"]
    comp = json.load(open(f"{run}/compare/summary.json"))
    print(run, json.dumps({"yield": mine.get("yield"), "length": mine.get("length")}), json.dumps(comp.get("results", comp), default=str)[:800])
PY
