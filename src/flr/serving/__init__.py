"""FLR online: the reward service behind ``flr serve`` (service; its FastAPI routes in app) and reward functions
for TRL, OpenRLHF and verl (rl). Imports flr's plain modules, kernel and scorers."""
