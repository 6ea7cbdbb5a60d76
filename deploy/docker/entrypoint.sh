#!/bin/sh
# CaseBridge container entrypoint.
#   migrate          upgrade the database schema and exit (run it once per release, as an
#                    init job, before the new version serves)
#   serve [ARGS]     the default: serve HTTP on 0.0.0.0:8000; with CASEBRIDGE_AUTO_MIGRATE=true
#                    it upgrades the schema first (fine for one replica; with several, run
#                    `migrate` once instead, so replicas do not race to upgrade)
#   anything else    a `casebridge` command: push-worker, api-keys create NAME, db current, ...
set -eu

is_true() {
    # The spellings pydantic accepts for `true`.
    case "$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')" in
        1 | true | t | yes | y | on) return 0 ;;
        *) return 1 ;;
    esac
}

command="${1:-serve}"
[ "$#" -gt 0 ] && shift

case "$command" in
    migrate)
        exec casebridge db upgrade "$@"
        ;;
    serve)
        if is_true "${CASEBRIDGE_AUTO_MIGRATE:-false}"; then
            casebridge db upgrade
        fi
        exec casebridge serve --host 0.0.0.0 --port 8000 "$@"
        ;;
    *)
        exec casebridge "$command" "$@"
        ;;
esac
