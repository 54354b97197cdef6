"""Reports from data: report.md (markdown), report.html (html, Jinja templates in flr/resources/templates) and the
pair browser's records (browser). Each renders rows a job has computed; none scores anything.

Imports: flr.errors, flr.eval, flr.records, flr.scorers
"""
