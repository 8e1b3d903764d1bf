"""Shared plumbing: errors, database, JSON responses, request context."""
