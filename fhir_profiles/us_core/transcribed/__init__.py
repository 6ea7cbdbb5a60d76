"""US Core terminology the shared copy lacks, transcribed by fhir_profiles.build."""
