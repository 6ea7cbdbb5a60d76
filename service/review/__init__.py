"""Review items: inbound changes the case could not take, waiting for a person to decide."""
