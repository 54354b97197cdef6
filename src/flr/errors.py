"""User-facing errors: the CLI prints these as one line, never as a traceback."""

from __future__ import annotations


class FLRError(Exception):
    """An error caused by user input or configuration (bad file, bad field, missing model)."""


class InputError(FLRError):
    """A record or file that cannot be used, located by file, line and field."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field, self.reason = file, line, field, message
        where = ":".join(str(x) for x in (file, line) if x is not None)
        parts = [p for p in (where, f"field '{field}'" if field else None, message) if p]
        super().__init__(": ".join(parts))


def check_at_least(config, minimums: dict[str, float]) -> None:
    """A config dataclass's numeric flags checked in ``__post_init__``, one error naming the flag."""
    for name, low in minimums.items():
        value = getattr(config, name)
        if value is not None and value < low:
            raise FLRError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
