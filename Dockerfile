# syntax=docker/dockerfile:1
# Bitcoin Aggregator Service image: the compiled TypeScript service, the KCL MultiLangDaemon's jars and a JRE.
# One image for every process of a task; the command picks the role:
#   scripts/kcl-daemon.sh <trade|bestbidask|depth>   a KCL daemon (it starts `aggregator process` per shard)
# Built and run on ECS; no Docker engine runs on the development machines, so this file is linted, not built, in CI.

FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends maven openjdk-17-jdk-headless \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
COPY test ./test
RUN npm run build && npm prune --omit=dev
RUN KCL_JAR_DIR=/app/kcl-jars bash scripts/kcl-jars.sh

FROM node:20-bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    KCL_JAR_DIR=/app/kcl-jars \
    CONFIG_FILE=/app/config/aggregator.yaml \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/kcl-jars ./kcl-jars
COPY package.json ./
COPY scripts ./scripts
COPY properties ./properties
COPY config ./config
RUN useradd --system --uid 10001 --home-dir /app aggregator && mkdir -p /app/.local && chown aggregator /app/.local
USER aggregator
# tini reaps the processor children and passes SIGTERM to the daemon, which hands its leases off gracefully.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["bash", "scripts/kcl-daemon.sh", "trade"]
