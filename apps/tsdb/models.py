"""Models of the tsdb app."""
