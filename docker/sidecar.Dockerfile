# The member image: `derecho sidecar` (the group member and the app's API) on the native engine.
# Build from the repository root: docker build -f docker/sidecar.Dockerfile -t derecho/sidecar .
FROM node:20-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake ninja-build libgtest-dev libibverbs-dev libpmem-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# The addon and the engine only: the native tests are not part of the image.
RUN cmake -S native -B build/native -G Ninja -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build/native --target derecho_addon \
 && npm run build \
 && npm prune --omit=dev

FROM node:20-bookworm-slim
# libibverbs with the userspace providers (rdma-core) for transport rdma; libpmem for persistent stores.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libibverbs1 ibverbs-providers libpmem1 zlib1g \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/proto ./proto
COPY --from=build /src/build/native/derecho.node ./build/native/derecho.node
# Writes go to the data volume (/var/lib/derecho) and the socket volume (/run/derecho) only.
USER 65532:65532
EXPOSE 7000 7100 9100
ENTRYPOINT ["node", "/app/dist/cli/derecho.js"]
CMD ["sidecar", "--config", "/etc/derecho/sidecar.yaml"]
