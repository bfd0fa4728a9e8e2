"""The batch layer without Dagster: what a daily run reads from PI and how it shapes and writes it.

`defs/` wires these into assets; `bench/` and scripts call them directly. Nothing here imports Dagster.
"""
