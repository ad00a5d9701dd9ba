#!/usr/bin/env bash
# Installs what the sch_plug side of `hac-lab bench` needs on Debian bookworm and builds its helper:
# user-mode-linux (kernel 6.1 with sch_plug.ko and veth.ko), iproute2 (tc with the plug
# qdisc), gcc and libc6-dev (to build scripts/plug/plugpeer.c into target/plug/plugpeer).
# Exits non-zero, naming what is missing, if anything cannot be installed or built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
need=()
command -v linux.uml >/dev/null 2>&1 || need+=(user-mode-linux)
command -v tc >/dev/null 2>&1 || need+=(iproute2)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -f /usr/include/linux/pkt_sched.h ] || need+=(linux-libc-dev)
[ -f /usr/include/stdio.h ] || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup.sh: need root to install: ${need[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || { echo "setup.sh: apt-get update failed" >&2; exit 1; }
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
        { echo "setup.sh: cannot install ${need[*]}" >&2; exit 1; }
fi
mods=$(ls -d /usr/lib/uml/modules/*/kernel 2>/dev/null | head -n 1)
for m in net/sched/sch_plug.ko drivers/net/veth.ko; do
    [ -n "$mods" ] && [ -f "$mods/$m" ] || { echo "setup.sh: UML module $m not found under /usr/lib/uml/modules" >&2; exit 1; }
done
# User-Mode Linux 6.1 (bookworm) cannot run on hosts whose XSAVE area is larger than its fixed
# FP buffer (AVX-512, AMX: "userspace - ptrace set fp regs failed, errno = 14" when it starts
# init). Exit 3 on exactly that signature so CI can say why the comparison is skipped.
smoke=$(timeout 60 linux.uml mem=64M rootfstype=hostfs rootflags=/ rw init=/bin/true \
    con=null con0=fd:0,fd:1 </dev/null 2>&1 || true)
if grep -q 'ptrace set fp regs failed' <<<"$smoke"; then
    echo "setup.sh: this host's CPU has an XSAVE area user-mode-linux $(dpkg-query -W -f='${Version}' user-mode-linux 2>/dev/null) cannot handle (ptrace set fp regs failed); the sch_plug side cannot run here" >&2
    exit 3
fi
mkdir -p "$root/target/plug"
gcc -O2 -Wall -Wextra -Werror -o "$root/target/plug/plugpeer" "$here/plugpeer.c" ||
    { echo "setup.sh: cannot build plugpeer" >&2; exit 1; }
echo "setup.sh: $(linux.uml --version 2>/dev/null | head -n 1 || echo user-mode-linux) ready; helper target/plug/plugpeer built"
