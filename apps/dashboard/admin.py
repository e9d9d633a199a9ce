"""Admin registrations of the dashboard app (its models arrive with the dashboard pages)."""
