"""The long jobs, each resumable and writing its summary: generate and score (the engines the others share), mine,
compare, audit, feedback (critiques -> follow-ups), followups (sets selected or fitted on labelled pairs), and
pipeline, which chains generate -> mine -> train -> compare.
Imports everything below it (plain modules, kernel, scorers, eval, training); a job imports no other job but
generate and score, except the pipeline."""
