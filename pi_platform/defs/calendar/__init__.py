"""The batch calendar: when daily partitions are read, and whether their data is fresh."""
