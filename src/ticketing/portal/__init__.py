"""The web interface under /portal/: requester portal and agent console, server-rendered."""
