"""Delta table maintenance: compaction of small files and vacuum of old versions."""
