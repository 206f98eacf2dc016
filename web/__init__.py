"""HTTP: the Traccar-compatible REST API (and later pages), served by twisted.web."""
