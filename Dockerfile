# syntax=docker/dockerfile:1
#
# Atrium gateway and the reference model server, one multi-stage build:
#
#   docker build -t atrium .                                   # the gateway (default target)
#   docker build -t atrium-model-server --target model-server .
#
# The runtime images hold the compiled JavaScript (`npm run build`: dist/) and production
# dependencies only, run on plain node as the unprivileged `node` user (uid 1000) and need no
# writable path but /tmp, so they run with a read-only root filesystem.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS base
WORKDIR /app
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# The workspaces' manifests: the gateway is the root package; the reference model server and
# tenant services are the workspaces under services/ (each with its own dependencies).
FROM base AS manifests
COPY package.json package-lock.json .npmrc ./
COPY services/model-server/package.json services/model-server/
COPY services/tickets/package.json services/tickets/
COPY services/realm/package.json services/realm/

# Every dependency of every workspace, dev included: the build, the playground bundle and model
# training run in the build stage. Scripts are off (as in .npmrc, onnxruntime-node needs no
# download: its CPU binaries ship in the package); `prepare` would need sources not copied yet.
FROM manifests AS deps
RUN --mount=type=cache,target=/root/.npm \
    NODE_ENV=development npm ci --ignore-scripts

FROM deps AS build
COPY . .
# The compiled code (tsc, then the SDL, configs and migrations it reads copied beside it), the
# offline GraphiQL bundle and the ONNX models (trained on seeded synthetic data: nothing is
# downloaded). Type checks and tests belong to CI (`npm test`), not to the image.
RUN npm run -s build \
 && npm run -s build:playground \
 && npm run -s models:build

# Production installs, one per image: the gateway's own dependencies only (the root package, no
# workspace: no onnxruntime-node), and the model server workspace's.
FROM manifests AS gateway-deps
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --workspaces=false --ignore-scripts

FROM manifests AS model-server-deps
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --workspace=@atrium/model-server --ignore-scripts

FROM base AS runtime
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/dist ./dist
# The built playground only: without its sources it is served as is, never rebuilt.
COPY --from=build /app/playground/dist ./playground/dist
USER node
# Node is PID 1 and handles SIGTERM itself (drain, then exit); npm would not forward it.
STOPSIGNAL SIGTERM

FROM runtime AS model-server
COPY --from=model-server-deps /app/node_modules ./node_modules
# The demo's trained models, where the compiled model server's defaults look for them.
COPY --from=build /app/services/model-server/models ./dist/services/model-server/models
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8001/v2/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/services/model-server/src/main.js", "--host", "0.0.0.0", "--port", "8001"]

# The default target: the gateway. Production mode needs ATRIUM_CONFIG (see atrium.example.yaml).
FROM runtime AS gateway
COPY --from=gateway-deps /app/node_modules ./node_modules
ENV HOST=0.0.0.0 \
    PORT=4000
EXPOSE 4000 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/src/main.js"]
