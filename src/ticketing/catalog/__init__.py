"""The service catalog: ticket types with their typed fields, teams and offers."""
