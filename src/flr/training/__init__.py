"""Trainers, one module per method beside the plumbing they share (base): the policy's DPO/KTO (policy), the
reward's own training, preference-tuned FLR and the classifier RM (reward), and TRL's argument classes (args).
Imports flr's plain modules, kernel and scorers."""
