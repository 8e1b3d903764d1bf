"""A multi-tenant, API-first service desk backend."""

__version__ = "0.1.0"
