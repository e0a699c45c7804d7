"""Synthesis: turning a starting point into a stimulus that matches a reference's activations."""

from metamers.synthesis.results import MetamerResult

__all__ = ["MetamerResult"]
