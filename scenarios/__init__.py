"""Scenario files, their loader and the runners (`python -m scenarios`)."""
