"""Orchestrator API routes (pipeline runs and deployments are added by the orchestrator issue)."""
urlpatterns: list = []
