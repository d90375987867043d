"""Validation studies: the paper's phantom study and its extensions."""
