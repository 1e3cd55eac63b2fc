# One image for every etcron role: `etcron store`, `etcron master`, `etcron worker`, the CLI.
#
#   docker build -t etcron:local .                      # with a registry: node:20-bookworm-slim
#   scripts/docker-base-image.sh etcron-base:local      # without one: a base made from this host
#   docker build --build-arg BASE_IMAGE=etcron-base:local -t etcron:local .
#
# With a base made from this host, the context's node_modules (built here, for this node and
# glibc) is reused as it is, since nothing can be downloaded; see scripts/docker-deps.sh.
ARG BASE_IMAGE=node:20-bookworm-slim

FROM ${BASE_IMAGE} AS build
# Lets the e2e test remove superseded build stages (test/support/docker-compose.ts).
LABEL org.etcron.stage=build
WORKDIR /src
COPY . .
RUN sh scripts/docker-deps.sh && node scripts/docker-app.mjs /src /out/app \
 && mkdir -p /out/data/shared

FROM ${BASE_IMAGE}
ENV NODE_ENV=production \
    PATH=/app/bin:/usr/local/bin:/usr/bin:/bin
COPY --from=build /out/app /app
# A named volume mounted here (or on shared/, the jobs' files in docker-compose.yml) starts as a
# copy of this directory, so it belongs to the user too.
COPY --from=build --chown=1000:1000 /out/data /var/lib/etcron
# uid 1000 is `node` in node's official images and in the base the script makes.
USER 1000:1000
WORKDIR /var/lib/etcron
EXPOSE 2379 2380 7070
# The same check serves every role: it reads the role from the container's command line. The
# generous timeout is for loaded hosts, where starting node alone can take seconds.
HEALTHCHECK --interval=5s --timeout=10s --start-period=30s --retries=5 \
  CMD ["node", "/app/scripts/docker-healthcheck.mjs"]
ENTRYPOINT ["etcron"]
CMD ["--help"]
