"""The long jobs, each resumable and writing its summary: generate and score (the engines the others share), eval,
mine, compare, audit, critiques (critiques -> user follow-ups), followups (sets selected, fitted or split) and
pipeline, which chains generate -> mine -> train -> compare. A job imports no other job but generate and score,
except the pipeline.

Imports: flr.arguments, flr.errors, flr.eval, flr.followups, flr.hashing, flr.kernel, flr.patterns, flr.perturbations, flr.records, flr.reports, flr.scorers, flr.training
"""
