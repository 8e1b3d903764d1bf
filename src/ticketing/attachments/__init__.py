"""Attachments: uploads streamed to a blob store, bound to tickets, downloaded with ranges."""
