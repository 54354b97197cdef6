#!/usr/bin/env bash
# The screenshots of report.html in README.md and docs/img: a small real run with the embedded model (cached runs
# take seconds), rendered by headless Chromium (Debian: apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
FLR=${FLR:-.venv/bin/flr}
CHROMIUM=${CHROMIUM:-chromium}
$FLR eval --benchmarks demo -o runs/demo-html
$FLR audit --input demo --limit 8 -o runs/audit-demo
shot() {  # shot OUT.png WIDTHxHEIGHT URL
  "$CHROMIUM" --headless --disable-gpu --no-sandbox --hide-scrollbars --window-size="$2" --screenshot="$1" "$3"
}
# the pair browser alone, filtered to pairs FLR gets right and length gets wrong, the first one opened
shot docs/img/report_eval.png 1280,1300 "file://$PWD/runs/demo-html/report.html#pick=flr:left&disagree=length&view=pairs"
shot docs/img/report_audit.png 1280,1250 "file://$PWD/runs/audit-demo/report.html"
