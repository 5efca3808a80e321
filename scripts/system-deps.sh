#!/usr/bin/env bash
# Debian packages the tests use: nftables/iproute2 for the NAT lab, chromium for the browser test.
# Installs what is missing when run as root on Debian; elsewhere it says what will be skipped.
set -u
need=()
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v conntrack >/dev/null 2>&1 || need+=(conntrack)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
        || echo "warning: apt-get could not install ${need[*]}; the tests that need them will skip"
else
    echo "note: not root on Debian, so ${need[*]} stay missing; the lab and browser tests will skip"
fi
exit 0
