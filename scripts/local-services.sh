#!/usr/bin/env bash
# Makes sure the local RabbitMQ (with its management plugin) and PostgreSQL
# are up, for `npm start` and `npm test` on a developer machine or in CI.
# It only acts on services of this machine: when RABBITMQ_MANAGEMENT_URL or
# DATABASE_URL point elsewhere, or a tool is missing, it prints what to do
# and leaves the rest to the gateway, which retries until they respond.
set -u

management_url=${RABBITMQ_MANAGEMENT_URL:-http://guest:guest@127.0.0.1:15672}
database_url=${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/pulse_gateway}

is_local() {
  case "$1" in
    *@127.0.0.1*|*@localhost*|*//127.0.0.1*|*//localhost*) return 0 ;;
    *) return 1 ;;
  esac
}

management_up() {
  curl -sf -o /dev/null --max-time 3 "$management_url/api/overview"
}

amqp_up() {
  (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null
}

wait_for() {
  local what=$1 check=$2
  for _ in $(seq 1 60); do
    "$check" && return 0
    sleep 1
  done
  echo "local-services: $what did not come up within 60 s" >&2
  return 1
}

ensure_rabbitmq() {
  is_local "$management_url" || return 0
  management_up && return 0
  if ! command -v rabbitmq-plugins >/dev/null 2>&1; then
    echo "local-services: the RabbitMQ management API is not answering at" \
      "127.0.0.1:15672 and rabbitmq-plugins is not installed here; start" \
      "RabbitMQ with the rabbitmq_management plugin (or run" \
      "\`docker compose up rabbitmq\`)." >&2
    return 0
  fi
  if ! amqp_up; then
    echo "local-services: starting RabbitMQ"
    rabbitmq-server -detached
    wait_for "RabbitMQ" amqp_up || return 1
  fi
  echo "local-services: enabling the RabbitMQ management plugin"
  rabbitmq-plugins enable rabbitmq_management >/dev/null
  wait_for "the RabbitMQ management API" management_up
}

postgres_up() {
  pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null
}

ensure_postgres() {
  is_local "$database_url" || return 0
  command -v pg_isready >/dev/null 2>&1 || return 0
  postgres_up && return 0
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "local-services: starting PostgreSQL"
    for version in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    wait_for "PostgreSQL" postgres_up
  else
    echo "local-services: PostgreSQL is not answering at 127.0.0.1:5432;" \
      "start it (or run \`docker compose up postgres\`)." >&2
  fi
}

status=0
ensure_rabbitmq || status=1
ensure_postgres || status=1
exit $status
