"""Subcommands of the ``flr`` CLI, one thin module each: parse flags, check inputs, call the library, print one line.
Imports anything below."""
