#!/bin/sh
# COUNT requests to URL from inside the edge container, each answer followed by @@avalon-answer-end.
# Invoked as `sh -c "$VERIFY_SCRIPT" verify COUNT URL` (see xtask/src/nginx/engine.rs).
i=0
while [ "$i" -lt "$1" ]; do
    wget -S -O - "$2" 2>&1 || true
    echo
    echo "@@avalon-answer-end"
    i=$((i + 1))
done
