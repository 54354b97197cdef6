"""flr: Follow-up Likelihood as Reward."""

__version__ = "0.1.0"
