"""FHIR R4 (4.0.1) ValueSets and CodeSystems behind the required bindings of the profiles we check.

Written by fhir_profiles.build from its table; FHIR's own package is not vendored here.
"""
