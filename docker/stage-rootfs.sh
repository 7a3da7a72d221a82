#!/bin/sh
# Stages the build context of the runtime images: both paths (`cargo xtask image build` on the host, and
# Dockerfile.builder inside a rust image) run this same script, so the images have the same shape.
#
#   stage-rootfs.sh OUT_DIR BINARY...
#
# OUT_DIR/bin/      the service binaries
# OUT_DIR/rootfs/   exactly the shared libraries `ldd` lists for them (glibc, libgcc_s, libm, the loader),
#                   the CA bundle, and the minimal /etc files glibc's resolver reads
# OUT_DIR/data/     an empty directory that becomes the writable /var/lib/avalon
#
# glibc >= 2.34 has the `files` and `dns` NSS modules built into libc.so.6, so name resolution of compose
# service names (getaddrinfo through /etc/hosts and Docker's DNS) needs no libnss_* files.
set -eu

out=${1:?usage: stage-rootfs.sh OUT_DIR BINARY...}
shift
[ "$#" -gt 0 ] || { echo "stage-rootfs.sh: no binaries given" >&2; exit 2; }

rm -rf "$out"
mkdir -p "$out/bin" "$out/rootfs/etc/ssl/certs" "$out/data"

for binary in "$@"; do
  cp "$binary" "$out/bin/"
  listing=$(ldd "$binary")
  if printf '%s\n' "$listing" | grep -q 'not found'; then
    printf 'stage-rootfs.sh: %s has unresolved libraries:\n%s\n' "$binary" "$listing" >&2
    exit 1
  fi
  # Lines look like `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`;
  # linux-vdso has no file. Each library is copied (symlinks resolved) to the path the binary asks for.
  for library in $(printf '%s\n' "$listing" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    mkdir -p "$out/rootfs$(dirname "$library")"
    cp -L "$library" "$out/rootfs$library"
  done
done

cp -L /etc/ssl/certs/ca-certificates.crt "$out/rootfs/etc/ssl/certs/ca-certificates.crt"
# getaddrinfo reads these; Docker bind-mounts /etc/hosts and /etc/resolv.conf over the container's own.
printf 'hosts: files dns\n' > "$out/rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/:/sbin/nologin\navalon:x:10001:10001:avalon:/var/lib/avalon:/sbin/nologin\n' > "$out/rootfs/etc/passwd"
printf 'root:x:0:\navalon:x:10001:\n' > "$out/rootfs/etc/group"
chmod -R a+rX,go-w "$out"
