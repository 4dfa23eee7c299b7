#!/usr/bin/env bash
# Installs what building and testing chunkprov needs, skipping what is already there:
# Debian packages (Cortex-M33 cross compiler and newlib, QEMU, CMake, Ninja), the Rust
# Cortex-M33 targets, rustfmt and clippy, and cbindgen.
set -euo pipefail

apt_pkgs=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm cmake ninja-build mosquitto)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

rustup target add thumbv8m.main-none-eabi thumbv8m.main-none-eabihf >/dev/null 2>&1 \
    || rustup target add thumbv8m.main-none-eabi thumbv8m.main-none-eabihf
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cbindgen_version=0.29.4
if ! cbindgen --version 2>/dev/null | grep -q "$cbindgen_version"; then
    echo "setup: installing cbindgen $cbindgen_version"
    cargo install --locked --quiet cbindgen --version "$cbindgen_version"
fi

# cloud: moto_server (the Lambda's AWS tests start it themselves) and cfn-lint (the deployment
# template), from PyPI.
py_pkgs=()
command -v moto_server >/dev/null 2>&1 || py_pkgs+=("moto[server]>=5.1,<6")
command -v cfn-lint >/dev/null 2>&1 || py_pkgs+=("cfn-lint>=1,<2")
if ((${#py_pkgs[@]})); then
    echo "setup: installing ${py_pkgs[*]}"
    python3 -m pip install --quiet "${py_pkgs[@]}" \
        || python3 -m pip install --quiet --break-system-packages "${py_pkgs[@]}"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
