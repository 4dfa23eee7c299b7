#!/usr/bin/env bash
# Installs what building, testing and running chunkprov locally needs, skipping what is already
# there: Debian packages (Cortex-M33 cross compiler and newlib, QEMU, CMake, Ninja, Mosquitto,
# the embedded-Linux app's libmosquitto and OpenSSL headers), the Rust Cortex-M33 targets,
# rustfmt and clippy, cbindgen, the PyPI tools below, and, only where a Zephyr tree is
# (ZEPHYR_BASE or ~/zephyrproject/zephyr; nothing is fetched), what building zephyr-app with it
# needs: the devicetree compiler and a Python >= 3.12.1 with Zephyr's build-time modules.
set -euo pipefail
. "$(dirname "$0")/zephyr-env.sh"
zephyr_find

apt_pkgs=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm cmake ninja-build mosquitto
    libmosquitto-dev libssl-dev pkg-config)
[ -z "$ZEPHYR_BASE" ] || apt_pkgs+=(device-tree-compiler)
# pip for the PyPI tools below, unless this Python already has one (pyenv, a venv).
python3 -m pip --version >/dev/null 2>&1 || apt_pkgs+=(python3-pip)
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

# cloud, from PyPI: moto_server (DynamoDB for the local stack; the Lambda's AWS tests start it
# themselves), cargo-lambda (its prebuilt binary: `cargo lambda watch --only-lambda-apis`, the
# Lambda Runtime API the local stack runs the Lambda behind) and cfn-lint (the template).
py_pkgs=()
command -v moto_server >/dev/null 2>&1 || py_pkgs+=("moto[server]>=5.1,<6")
command -v cargo-lambda >/dev/null 2>&1 || py_pkgs+=("cargo-lambda>=1.8,<2")
command -v cfn-lint >/dev/null 2>&1 || py_pkgs+=("cfn-lint>=1,<2")
if ((${#py_pkgs[@]})); then
    echo "setup: installing ${py_pkgs[*]}"
    python3 -m pip install --quiet "${py_pkgs[@]}" \
        || python3 -m pip install --quiet --break-system-packages "${py_pkgs[@]}"
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi

# zephyr-app: Debian 12's python3 is 3.11; the workspace's own .venv is made from a newer Python.
if [ -n "$ZEPHYR_BASE" ]; then
    zephyr_py_mods="import elftools, yaml, pykwalify, packaging"
    if [ -z "$ZEPHYR_PYTHON" ]; then
        echo "setup: Zephyr at $ZEPHYR_BASE needs Python >= 3.12.1; none found (set ZEPHYR_PYTHON)" >&2
        exit 1
    fi
    if ! "$ZEPHYR_PYTHON" -c "$zephyr_py_mods" 2>/dev/null; then
        venv=$ZEPHYR_WS/.venv
        if [ "$ZEPHYR_PYTHON" != "$venv/bin/python" ]; then
            echo "setup: making $venv from $ZEPHYR_PYTHON"
            "$ZEPHYR_PYTHON" -m venv "$venv"
        fi
        echo "setup: installing pyelftools PyYAML pykwalify packaging west into $venv"
        "$venv/bin/python" -m pip install --quiet pyelftools PyYAML pykwalify packaging west
    fi
fi
