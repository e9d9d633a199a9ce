"""Notifications: subscriptions per user and deployment, e-mail and signed webhooks, delivery log, digests."""
