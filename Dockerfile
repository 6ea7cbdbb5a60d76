# syntax=docker/dockerfile:1
# The base is pinned by digest, so a rebuild gets the same bytes; update it on purpose (see
# docs/production.md, "The image"). Both stages use the same base.
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3

# Build stage: resolve and install CaseBridge and its pinned dependencies into a venv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/casebridge
COPY pyproject.toml constraints.txt README.md ./
COPY service ./service
COPY mappings ./mappings
COPY fhir_profiles ./fhir_profiles
RUN /opt/casebridge/bin/pip install -c constraints.txt .

# Runtime stage: the venv and the entrypoint only, run as an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/casebridge/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CASEBRIDGE_DATABASE_URL=sqlite+aiosqlite:////var/lib/casebridge/casebridge.db
RUN groupadd --system --gid 10001 casebridge \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/casebridge --create-home casebridge
COPY --from=build /opt/casebridge /opt/casebridge
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/casebridge-entrypoint
USER 10001:10001
# The SQLite default lives here. No VOLUME instruction: it would make an anonymous volume per
# container, which a separate `migrate` container never shares. Mount a named volume instead:
# `-v casebridge-data:/var/lib/casebridge` (docs/production.md).
WORKDIR /var/lib/casebridge
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["casebridge-entrypoint"]
CMD ["serve"]
