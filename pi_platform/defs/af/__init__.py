"""The AF hierarchy: elements and their attributes."""
