"""Reports from data, through one renderer: a job's results become a Document of tables as rows (document), which
one template set (flr/resources/templates) writes as report.md and as report.html (html), so the two cannot
disagree. eval's report (markdown), audit's (audit), compare's (compare), their plots (plots) and the pair
browser's rows (browser). None scores anything.

Imports: flr.errors, flr.eval, flr.hashing, flr.patterns, flr.records, flr.scorers
"""
