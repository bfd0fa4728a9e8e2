"""Recorded values: tag selection, the streaming extraction into Delta, and the daily asset."""
