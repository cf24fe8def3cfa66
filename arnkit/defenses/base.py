"""The Defense interface lives in the services layer (`arnkit.runs.defense`), below the recipes, so the
training-run template and gray-box scoring use it; this module keeps the public import path."""

from arnkit.runs.defense import Defense, compose, no_defense

__all__ = ["Defense", "compose", "no_defense"]
