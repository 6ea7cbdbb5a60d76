"""Push: durable, serialized, conflict-aware write-back of projected cases to linked EHRs."""
