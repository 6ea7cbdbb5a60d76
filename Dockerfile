# syntax=docker/dockerfile:1
# Build stage: resolve and install CaseBridge and its pinned dependencies into a venv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/casebridge
COPY pyproject.toml constraints.txt README.md ./
COPY service ./service
COPY mappings ./mappings
COPY fhir_profiles ./fhir_profiles
RUN /opt/casebridge/bin/pip install -c constraints.txt .

# Runtime stage: the venv only, run as an unprivileged user.
FROM python:3.11-slim AS runtime
ENV PATH=/opt/casebridge/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CASEBRIDGE_DATABASE_URL=sqlite+aiosqlite:////var/lib/casebridge/casebridge.db
RUN useradd --system --uid 10001 --home-dir /var/lib/casebridge --create-home casebridge
COPY --from=build /opt/casebridge /opt/casebridge
USER casebridge
WORKDIR /var/lib/casebridge
VOLUME ["/var/lib/casebridge"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["casebridge", "serve", "--host", "0.0.0.0", "--port", "8000"]
