"""The web viewer: the plant as the lake holds it (AF tree, event frames and alarms, live values, ingestion).

`pi-platform viewer` serves it alone and `pi-platform up` serves it beside Dagster. Every page reads the Delta
tables through `storage` (filters and column projections pushed into the Arrow dataset scan, pages bounded), so
it answers the same at 20 tags or 100k and never puts load on PI. Pages are static HTML + vanilla JavaScript
shipped in `static/` (no CDN: it works offline).
"""
