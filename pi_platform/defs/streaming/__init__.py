"""Streaming: the `stream_values` asset, its health checks and the sensor that drives the collector."""
