"""Admin registrations of the tsdb app."""
