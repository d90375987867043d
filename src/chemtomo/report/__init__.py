"""Figures and reports a person reads. Nothing here computes a result."""
