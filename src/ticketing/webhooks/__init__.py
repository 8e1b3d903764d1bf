"""Webhooks: signed posts of ticket events to the URLs a tenant configures, at least once."""
