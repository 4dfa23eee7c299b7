#!/bin/sh
# Run a bare-metal test ELF on QEMU mps2-an505 (Cortex-M33) and exit with the
# program's exit status (main's return value / exit() argument, & 0xff).
#
#   tests/c/qemu/run.sh prog.elf [extra qemu args...]
#   tests/c/qemu/run.sh bench.elf -icount shift=0     # bench_clock.h units
#
# Exit status:
#   the program's     main() returned / exit() was called (non-zero & 0xff == 0 -> 1)
#   98                abort() or a failed assert()
#   99                unexpected interrupt
#   100+N             fault exception N: 103 HardFault (incl. stack overflow)
#   124 (137)         not finished within QEMU_TIMEOUT s (default 120); 137 if
#                     QEMU then needed SIGKILL
#   134               QEMU aborted: CPU lockup (fault inside the fault handler,
#                     or the file has no vector table at 0x10000000)
#   1                 QEMU could not start (bad option, ...)
#
# Program output (semihosting) goes to this script's stdout/stderr. The
# board's UARTs are discarded (-serial null) and QEMU gets no monitor or
# stdio chardev: -nographic would put the terminal in raw mode and, under
# `timeout` (a background process group), get QEMU stopped by SIGTTOU.
#
# Environment: QEMU_TIMEOUT (seconds), QEMU (emulator binary).
set -u

if [ $# -lt 1 ]; then
    echo "usage: $0 ELF [extra qemu args...]" >&2
    exit 2
fi
elf=$1
shift
if [ ! -f "$elf" ]; then
    echo "$0: no such file: $elf" >&2
    exit 2
fi

limit=${QEMU_TIMEOUT:-120}
timeout --kill-after=5 "$limit" "${QEMU:-qemu-system-arm}" \
    -M mps2-an505 -cpu cortex-m33 \
    -display none -monitor none -serial null \
    -semihosting-config enable=on,target=native \
    -kernel "$elf" "$@"
status=$?

case $status in
    124) echo "$0: TIMEOUT: $elf did not exit within ${limit}s" >&2 ;;
    137) echo "$0: TIMEOUT: $elf did not exit within ${limit}s (killed)" >&2 ;;
esac
exit $status
