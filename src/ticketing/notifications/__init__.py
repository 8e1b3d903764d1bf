"""Notifications: per-user notices made from ticket events; listed, counted, streamed."""
