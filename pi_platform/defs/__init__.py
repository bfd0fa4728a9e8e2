"""Dagster wiring only, one sub-package per domain (af, points, recorded, summaries, events, streaming, calendar,
maintenance), each exposing `definitions.defs`; `definitions.py` finds and merges them into the code location."""
