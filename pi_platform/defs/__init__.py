"""Dagster definitions, one folder per domain (AF, points, recorded values, events, maintenance, streaming);
`definitions.py` merges them into the code location."""
