"""Tickets: creation (the seed's endpoint) and their public shape."""
