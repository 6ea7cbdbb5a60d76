"""US Core releases the service checks against, one data package per version."""
