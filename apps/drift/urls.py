"""API routes of the drift app, mounted under /api/v1/drift/."""
urlpatterns: list = []
