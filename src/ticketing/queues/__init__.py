"""Queues: routing tickets to a queue and an assignee; members and their availability."""
