"""The versioned FHIR store: every resource CaseBridge serves, stored as the JSON bytes it is
served as, with its versions and a search index. Written when a case changes, in the same
transaction; read by `/fhir` without ever re-parsing the JSON."""
