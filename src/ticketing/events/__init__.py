"""Ticket events: the outbox written with every change, and what reads it (SSE list updates)."""
