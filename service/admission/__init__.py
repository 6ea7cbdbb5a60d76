"""Admission control: shared rate limits (`rate_limits`) and the per-process bound on
in-flight work (`in_flight`); `install.install_admission` wires both into the app."""
