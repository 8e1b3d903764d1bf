"""Allows `python -m ticketing`."""

from ticketing.cli import main

main()
