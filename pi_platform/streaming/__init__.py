"""Live PI data: WebSocket channels -> write-ahead log -> exactly-once micro-batches in the `stream_values` Delta table.

Entry points: `pi-platform stream` (command.py), `Collector` (collector.py); design notes in README.md here.
"""
