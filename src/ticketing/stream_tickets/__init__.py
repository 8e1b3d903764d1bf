"""Stream tickets: open an event stream from a browser's EventSource, which sends no headers."""
