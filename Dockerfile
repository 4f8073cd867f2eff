# Cairn's production image. No Docker engine runs on our build machines, so the build stage runs the very
# steps the README and .ci/run use (npm ci && npm test); CI proves those steps on every change.

FROM node:20-bookworm-slim AS build
# git for the tests; python3, make and g++ because sqlite3 builds its native addon from source.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git python3 make g++ ca-certificates bubblewrap \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY hooks ./hooks
COPY migrations ./migrations
COPY server ./server
COPY test ./test
COPY bench ./bench
RUN npm ci && npm test && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates bubblewrap \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/cairn --create-home cairn \
 && mkdir -p /data /keys && chown cairn:cairn /data /keys && chmod 0700 /keys
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/hooks ./hooks
ENV NODE_ENV=production \
    CAIRN_DATA_DIR=/data \
    CAIRN_KEYS_DIR=/keys \
    CAIRN_BIND=0.0.0.0 \
    CAIRN_HTTP_PORT=8080 \
    CAIRN_SSH_PORT=2222
VOLUME ["/data", "/keys"]
USER cairn
EXPOSE 8080 2222
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+process.env.CAIRN_HTTP_PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "/app/bin/cairn.js"]
CMD ["serve"]
