"""`pi-platform bench`: reproducible performance figures for batch extraction and streaming.

The batch benchmark runs the simulator and the extraction in separate processes so each one's CPU and
memory are measured on their own, and compares the extractor's CPU per value with a parse floor measured
in the same run on the same payloads (see floor.py). Figures are JSON; nothing here asserts a speed.
"""
