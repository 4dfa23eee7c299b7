# Sourced by setup.sh, test.sh and bench.sh: finds a Zephyr tree and what building zephyr-app
# with it needs. Nothing here fetches Zephyr; a tree is used only when it is already there.
#
#   zephyr_find       sets ZEPHYR_BASE (empty when there is no tree), ZEPHYR_WS (the workspace
#                     around it), ZEPHYR_MODULES (CMSIS 6, the Nordic HAL and Mbed TLS found in
#                     the workspace's usual places, unless already set) and ZEPHYR_PYTHON (a
#                     Python >= 3.12.1: $ZEPHYR_PYTHON, the workspace's .venv, or one on PATH or
#                     in pyenv; empty when none).
#   zephyr_build B D  configures and builds zephyr-app for board B into directory D.
#
# The tree: $ZEPHYR_BASE, else ~/zephyrproject/zephyr (Zephyr's getting-started layout).

zephyr_find() {
    if [ -z "${ZEPHYR_BASE:-}" ] && [ -f "$HOME/zephyrproject/zephyr/VERSION" ]; then
        ZEPHYR_BASE=$HOME/zephyrproject/zephyr
    fi
    if [ -n "${ZEPHYR_BASE:-}" ] && [ ! -f "$ZEPHYR_BASE/VERSION" ]; then
        echo "zephyr: ZEPHYR_BASE=$ZEPHYR_BASE is not a Zephyr tree" >&2
        ZEPHYR_BASE=""
    fi
    ZEPHYR_BASE=${ZEPHYR_BASE:-}
    export ZEPHYR_BASE
    [ -n "$ZEPHYR_BASE" ] || return 0
    ZEPHYR_WS=$(cd "$ZEPHYR_BASE/.." && pwd)
    if [ -z "${ZEPHYR_MODULES:-}" ]; then
        local m found=()
        for m in modules/hal/cmsis_6 modules/hal/nordic modules/crypto/mbedtls; do
            [ -f "$ZEPHYR_WS/$m/zephyr/module.yml" ] && found+=("$ZEPHYR_WS/$m")
        done
        ZEPHYR_MODULES=$(IFS=';'; echo "${found[*]}")
    fi
    if [ -z "${ZEPHYR_PYTHON:-}" ]; then
        local p
        for p in "$ZEPHYR_WS/.venv/bin/python" python3.13 python3.12 \
            "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python; do
            if command -v "$p" >/dev/null 2>&1 && "$p" -c \
                'import sys; sys.exit(sys.version_info < (3, 12, 1))' 2>/dev/null; then
                ZEPHYR_PYTHON=$(command -v "$p")
                break
            fi
        done
    fi
    ZEPHYR_PYTHON=${ZEPHYR_PYTHON:-}
    local version
    version=$(awk -F' = ' '/^VERSION_MAJOR/{a=$2} /^VERSION_MINOR/{b=$2} /^PATCHLEVEL/{c=$2}
        /^EXTRAVERSION/{e=$2} END{printf "v%s.%s.%s%s", a, b, c, (e ? "-" e : "")}' \
        "$ZEPHYR_BASE/VERSION")
    ZEPHYR_VERSION=$version
}

# zephyr_build <board> <build dir> [cmake args...]
zephyr_build() {
    local board=$1 dir=$2
    shift 2
    local variant=host cross=()
    case $board in
        native_sim*) variant=host ;;
        *) variant=cross-compile; cross=(-DCROSS_COMPILE=/usr/bin/arm-none-eabi-) ;;
    esac
    ZEPHYR_TOOLCHAIN_VARIANT=$variant cmake -G Ninja -S zephyr-app -B "$dir" \
        -DBOARD="$board" -DPython3_EXECUTABLE="$ZEPHYR_PYTHON" \
        -DZEPHYR_MODULES="$ZEPHYR_MODULES" -DBUILD_VERSION="$ZEPHYR_VERSION" \
        -DCHUNKPROV_CARGO_TARGET_DIR="$PWD/target" "${cross[@]}" "$@" &&
        cmake --build "$dir"
}
