# syntax=docker/dockerfile:1
# Bitcoin Aggregator Service image: the compiled TypeScript service (production node_modules only), the KCL
# MultiLangDaemon's jars and a headless JRE 17. One image for every process of a task; the role is chosen by
# scripts/launch.sh (argument or ROLE):
#   all                 the three KCL daemons and the feature sidecar in one container (the default)
#   daemon:<kind>       one KCL daemon, kind = trade | bestbidask | depth (it starts `aggregator process` per shard)
#   sidecar             the feature sidecar: GET /health on health.port (8082), Prometheus /metrics on 9091
# deploy/ecs/task-definition.json runs one container per role. No Docker engine runs on the development
# machines: this file is checked by test/unit/deploy/deploy-files.test.ts (parsed, not built).
#
# Stages: kcl-jars (Maven + JDK resolve the daemon's classpath), build (npm ci + tsc of the production build,
# tsconfig.build.json: src/ without the development-only src/dev and src/cli/dev), deps (production node_modules),
# runtime. BuildKit builds the first three in parallel.
#
# Base image: Node.js 24 LTS (the line of .nvmrc, which the tests run on), Debian bookworm slim, pinned by digest
# so that a rebuild gets the same bytes. Every stage uses the same reference. To update it (a Node patch release,
# Debian security fixes): `docker buildx imagetools inspect node:24-bookworm-slim` prints the index digest; put it
# in the four FROM lines (test/unit/deploy/deploy-files.test.ts checks that they agree and that the tag's major is
# that of .nvmrc), and move .nvmrc to the same Node release.

FROM node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d AS kcl-jars
# The man directory is missing in slim images and the JDK's post-install needs it.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends maven openjdk-17-jdk-headless \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY scripts/kcl-jars.sh ./scripts/kcl-jars.sh
COPY scripts/kcl/pom.xml ./scripts/kcl/pom.xml
# The jars and their stamp (.pom.sha256): at run time kcl-jars.sh finds the stamp equal to the pom and
# prints the directory without needing Maven.
RUN --mount=type=cache,target=/root/.m2 KCL_JAR_DIR=/opt/kcl-jars bash scripts/kcl-jars.sh

FROM node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/copy-assets.js ./scripts/
COPY src ./src
# The production build compiles src/ without src/dev (benchmarks, soak, local-stack launchers, simulated exchange,
# CSV replay) and src/cli/dev (the replay and stack commands): the image never compiles development-only code
# (test/integration/image-contents.test.ts runs the same build and checks it).
RUN npm run build:production

FROM node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency of the service needs an install script (only classic-level, a dev dependency, has one).
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund --ignore-scripts

FROM node:24-bookworm-slim@sha256:6f7b03f7c2c8e2e784dcf9295400527b9b1270fd37b7e9a7285cf83b6951452d AS runtime
# bash and setsid (util-linux) come with the base image; tini is PID 1 and reaps the processors a daemon leaves.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 aggregator \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin aggregator
WORKDIR /app
ENV NODE_ENV=production \
    CONFIG_FILE=/app/config/aggregator.yaml \
    KCL_JAR_DIR=/app/kcl-jars \
    KCL_PROFILE=production \
    HEALTH_PORT=8082
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=kcl-jars /opt/kcl-jars ./kcl-jars
COPY package.json .nvmrc ./
COPY config/aggregator.yaml ./config/aggregator.yaml
COPY properties ./properties
# Only the scripts a container runs: launch.sh -> kcl-daemon.sh -> kcl-jars.sh (finds the jars by the pom's
# stamp) and node-runtime.sh (the system node is of the .nvmrc line: it changes nothing here).
COPY scripts/launch.sh scripts/kcl-daemon.sh scripts/kcl-jars.sh scripts/node-runtime.sh ./scripts/
COPY scripts/kcl/pom.xml ./scripts/kcl/pom.xml
# The root filesystem is read-only in production (ECS readonlyRootFilesystem); the only writable paths are
# /app/.local (the rendered daemon .properties) and /tmp (the JVM's), both volumes in the task definition.
RUN mkdir -p /app/.local && chown 10001:10001 /app/.local
VOLUME ["/app/.local", "/tmp"]
USER 10001:10001
# The sidecar's ports: /health (health.port) and Prometheus /metrics (metrics.prometheus_port).
EXPOSE 8082 9091
# The health check is the sidecar's GET /live (node: the image has no curl): the process and its event loop answer.
# Not /health: that answers 503 whenever any component is degraded (no market data yet, the exchange's REST down
# for a re-anchor), and restarting the task cures none of those; /health is for the load balancer and alerting.
# It applies to a container whose role includes the sidecar (sidecar, all). A daemon-only container overrides it: ECS monitors only the health
# checks of the task definition (the daemon containers define none), `docker run --no-healthcheck`, compose
# `healthcheck: {disable: true}`. HEALTH_PORT must equal health.port of the config (a unit test checks it).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HEALTH_PORT || '8082') + '/live', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# tini forwards SIGTERM to launch.sh, which forwards it to every daemon (graceful lease hand-off within
# kcl.shutdown_grace_millis) and to the sidecar, and waits for them.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["bash", "scripts/launch.sh", "all"]
