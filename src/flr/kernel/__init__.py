"""The model side: load a model (models), render a conversation and find the follow-up's tokens (chat), and the
packed log-probs of many follow-ups after one shared prefix (logprobs).

Imports: flr.errors, flr.hashing, flr.paths, flr.records
"""
