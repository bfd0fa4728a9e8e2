"""`pi-platform up` and what it needs to behave like a service: `up` (the flow), `lock` (one instance per Dagster
home and state directory), `preflight` (checks before anything starts), `children` (start, signals, ordered
stop), `backfill` (launch and follow through GraphQL), `stream_status` (the collector in one line)."""
