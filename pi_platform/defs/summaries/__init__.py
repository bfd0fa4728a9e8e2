"""Summaries: PI's own per-interval statistics (`recorded_summaries`) and interpolated values (`interpolated_values`)."""
