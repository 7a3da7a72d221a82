#!/bin/sh
# The edge writer: operations on nginx's state directory, run by xtask in a short-lived helper container
# made from the edge's own image; the operations are described at EDGE_SCRIPT in xtask/src/nginx/engine.rs.
# Invoked as `sh -c "$EDGE_SCRIPT" edge OP DIR ARGS...`.
set -eu
op=$1
dir=$2
cd "$dir"
# Whatever the helper writes belongs to the directory's owner, as if that user had written it.
owner=$(stat -c %u:%g .)
own_all() {
    chown -h -R "$owner" . || echo "warning: cannot give $dir back to $owner" >&2
}

# Tree names are xtask's own `<stamp>-<config id>` (no blanks, no newlines), so listing them with ls is safe.
# shellcheck disable=SC2012
swap_to() {
    if [ ! -d "trees/$1" ]; then echo "no tree trees/$1" >&2; return 3; fi
    rm -f .live.new
    ln -s "trees/$1" .live.new
    mv -f -T .live.new live
    echo "@@avalon-swapped"
    excess=$(( $(ls trees | wc -l) - $3 ))
    for tree in $(ls trees | sort); do
        [ "$excess" -gt 0 ] || break
        if [ "$tree" != "$1" ] && [ "$tree" != "$2" ]; then
            rm -rf "trees/$tree" || echo "warning: cannot remove trees/$tree" >&2
            excess=$((excess - 1))
        fi
    done
}

adopt_flat() {
    if [ ! -L live ] && [ -e nginx.conf ]; then
        rm -rf trees/0000-initial
        mkdir -p trees/0000-initial
        for entry in *; do
            if [ "$entry" != trees ]; then cp -a "$entry" trees/0000-initial/; fi
        done
        rm -f .live.new
        ln -s trees/0000-initial .live.new
        mv -f -T .live.new live
    fi
    for path in live/*; do
        if [ ! -e "$path" ]; then continue; fi
        entry=${path#live/}
        if [ -L "$entry" ]; then continue; fi
        rm -f ".$entry.link"
        ln -s "live/$entry" ".$entry.link"
        if [ -d "$entry" ]; then rm -rf ".flat-$entry"; mv "$entry" ".flat-$entry"; fi
        mv -f -T ".$entry.link" "$entry"
    done
}

# Unpacks the tar on stdin (it holds NAME/...) into trees/ and runs nginx -t on trees/NAME; a rejected tree
# is removed. Called where `set -e` does not apply, so every step checks for itself.
unpack_and_check() {
    mkdir -p trees || return $?
    rm -rf "trees/$1" || return $?
    status=0
    tar -x -f - -C trees || status=$?
    if [ "$status" -ne 0 ]; then rm -rf "trees/$1"; return "$status"; fi
    nginx -t -p "$dir/trees/$1/" -c nginx.conf 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then rm -rf "trees/$1"; fi
    return "$status"
}

make_live() {
    adopt_flat
    # In the flat-linked layout, an entry the new tree adds needs its link before nginx reads it.
    if [ -L nginx.conf ]; then
        for path in "trees/$1"/*; do
            entry=${path##*/}
            if [ ! -e "$entry" ] && [ ! -L "$entry" ]; then ln -s "live/$entry" "$entry"; fi
        done
    fi
    previous=""
    if [ -L live ]; then previous=$(readlink live); previous=${previous#trees/}; fi
    echo "@@avalon-previous $previous"
    swap_to "$1" "$previous" "$2"
    own_all
}

case "$op" in
check)
    status=0
    unpack_and_check "$3" || status=$?
    rm -rf "trees/$3"
    exit "$status"
    ;;
stage)
    name=$3
    read -r size
    status=0
    head -c "$size" | unpack_and_check "$name" || status=$?
    if [ "$status" -ne 0 ]; then exit "$status"; fi
    echo "@@avalon-staged"
    go=""
    read -r go || true
    if [ "$go" != go ]; then
        rm -rf "trees/$name"
        echo "the staged tree $name was discarded" >&2
        exit 4
    fi
    make_live "$name" "$4"
    ;;
swap)
    swap_to "$3" "$4" "$5"
    own_all
    ;;
adopt)
    adopt_flat
    own_all
    ;;
*)
    echo "unknown operation $op" >&2
    exit 2
    ;;
esac
