"""Tenants: their vocabularies (statuses, ticket types, teams)."""
