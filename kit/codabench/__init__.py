"""Codabench delivery: a trained image-classification fold as a zip of model.py and one exported program."""
