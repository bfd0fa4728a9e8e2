"""pi_platform: PI Web API data into validated Delta Lake tables, in batch and live."""

__version__ = "0.1.0"
