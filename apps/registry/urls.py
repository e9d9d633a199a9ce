"""API routes of the registry app, mounted under /api/v1/registry/."""
urlpatterns: list = []
