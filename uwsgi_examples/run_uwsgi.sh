#!/bin/sh
# uwsgi.ini on the command line: 4 workers, threads, lazy apps, HTTP on $PORT (8000).
# Extra arguments go to uwsgi, e.g. --max-requests 1000, or --lazy-apps=false.
cd "$(dirname "$0")" || exit 1
exec env AUTOWRAPT_BOOTSTRAP=flask uwsgi \
    --master --processes 4 --enable-threads --lazy-apps --need-app \
    --http-socket "127.0.0.1:${PORT:-8000}" --module app:app "$@"
