"""Time-series store: one backend contract (SQL, InfluxDB), the STAMM tag schema, ingest and query."""
