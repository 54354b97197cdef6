"""FLR online: the reward service behind ``flr serve`` (service: limits, micro-batching; its FastAPI routes in
app). The reward functions that call it live in flr.rl.

Imports: flr.errors, flr.kernel, flr.records, flr.scorers
"""
