#!/bin/sh
# The example app under gunicorn: 4 workers forked from a master that loaded the app once
# (--preload), HTTP on $PORT (8000). Extra arguments go to gunicorn.
cd "$(dirname "$0")" || exit 1
exec env AUTOWRAPT_BOOTSTRAP=flask gunicorn --preload --workers 4 \
    --bind "127.0.0.1:${PORT:-8000}" "$@" app:app
