"""API routes of the tsdb app, mounted under /api/v1/tsdb/."""
urlpatterns: list = []
