"""The files each job writes in its output folder: the pipeline joins its stages by these names."""

CANDIDATES_FILE = "candidates.jsonl"  # flr generate
SCORED_FILE = "scored.jsonl"  # flr mine: every candidate's reward
MINED_FILES = {"dpo": "pairs.jsonl", "kto": "unpaired.jsonl"}  # flr mine
COMPARE_FILE = "compare.jsonl"  # flr compare
SUMMARY_FILE = "summary.json"  # every job
MOVES_FILE = (
    "followup_moves.jsonl"  # flr audit (FLR scorer): how content-free edits move each follow-up; select reads it
)
