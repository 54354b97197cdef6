"""Subcommands of the ``flr`` CLI: thin wrappers over the library."""
