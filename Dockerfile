# Image of the gateway; `docker compose up --build` builds and runs it with
# RabbitMQ and PostgreSQL.
FROM node:20-bookworm-slim

WORKDIR /app

# `npm ci` runs the postinstall script, which generates the Prisma client
# from prisma/ with scripts/prisma-generate.js and prisma.config.ts, so
# those are copied before it.
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
COPY scripts ./scripts
RUN npm ci

COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY console ./console
RUN npm run build

ENV HOST=0.0.0.0 PORT=4000
EXPOSE 4000
USER node
CMD ["node", "dist/server/main.js"]
