# Crate server image. Build: docker build -t crate-server .
FROM node:24-slim AS build
WORKDIR /app
RUN npm install -g pnpm@10.34.9
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json ./
COPY packages ./packages
COPY bench/package.json ./bench/package.json
RUN pnpm install --frozen-lockfile && pnpm run build && pnpm deploy --filter @crate/server --prod --legacy /out

FROM node:24-slim
WORKDIR /app
COPY --from=build /out ./
# `crate-server` on the PATH, for `docker compose exec crate crate-server key-backup …`.
RUN ln -s /app/bin/crate-server.js /usr/local/bin/crate-server
# Data (writable: the embedded database, key_backups/) and config (read-only: the master key
# file, nothing else) stay apart; docs/operations.md.
RUN mkdir -p /var/lib/crate && chown node:node /var/lib/crate
USER node
EXPOSE 8080
ENTRYPOINT ["node", "bin/crate-server.js"]
# The embedded database; docker-compose.yml runs against Postgres instead.
CMD ["start", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/var/lib/crate"]
