"""FLR online: the reward service behind ``flr serve`` (service) and reward functions for TRL, OpenRLHF and verl
(rl). Imports flr's plain modules, kernel and scorers."""
