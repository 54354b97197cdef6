"""Subcommands of the ``flr`` CLI, one thin module each: parse flags, check inputs, call the library, print one line.

Imports: flr.arguments, flr.errors, flr.eval, flr.followups, flr.jobs, flr.kernel, flr.records, flr.reports, flr.scorers, flr.serving, flr.training
"""
