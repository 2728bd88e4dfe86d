# Basalt API server. Build: docker build -t basalt .
# Run:   docker run -p 8080:8080 -v basalt-data:/data basalt

# --- Production dependencies only. A separate stage so npm's cache and the lockfile
# install never reach the runtime image.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: the server needs no build step (tsx and yaml are runtime dependencies on
# purpose), and the image's own Node 24 runs it (the `node` package pinning Node for npm
# scripts is a dev dependency). --ignore-scripts: no production dependency needs its install
# script (esbuild ships its binary as an optional package; core-js only prints a banner), and
# it keeps swagger-ui-dist's @scarf/scarf from reporting analytics during the build.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- Runtime.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    BASALT_DATA_DIR=/data

# The embedded PGlite database lives here; created before VOLUME so a fresh named volume
# starts owned by the unprivileged user.
RUN mkdir /data && chown node:node /data

# Application files stay root-owned: the server process can read but not rewrite its code.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json openapi.yaml ./
COPY src ./src
COPY layers ./layers

USER node
VOLUME /data
EXPOSE 8080

# The slim image has no curl; node's fetch does the probe. start-period covers opening the
# database and running migrations on first start.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"

# Same command as `npm start`, in exec form: node runs as PID 1 with no shell or npm in
# between, so `docker stop`'s SIGTERM reaches it and Basalt drains in-flight requests and
# closes the database. (PID 1 ignores signals it has no handler for; Basalt installs its own.)
# docker stop sends SIGKILL after 10 s, the same as the default BASALT_SHUTDOWN_GRACE:
# give it more (docker stop -t 20, compose stop_grace_period) if requests may run that long.
CMD ["node", "--import", "tsx", "src/main.ts"]
