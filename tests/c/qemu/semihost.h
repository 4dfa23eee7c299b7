/*
 * Minimal Arm semihosting for the QEMU test harness (mps2-an505, Cortex-M33).
 *
 * QEMU must run with `-semihosting-config enable=on,target=native` (run.sh
 * does this). Without it every call below is a BKPT that faults.
 *
 * Output goes to QEMU's own stdout (fd 1) or stderr (fd 2) through
 * semihosting ":tt" handles. newlib's stdio (printf, puts, fprintf(stderr),
 * ...) is wired to these functions by semihost.c, so tests normally just use
 * <stdio.h>; stdout is line buffered, stderr unbuffered. stdin reads EOF.
 * newlib-nano's printf has no %lld/%llu (and no %f unless linked with
 * `-u _printf_float`): print 64-bit values as two 32-bit halves or cast.
 *
 * Exit: semihost_exit(status) ends QEMU with exit status `status & 0xff`
 * (SYS_EXIT_EXTENDED). A non-zero status whose low byte is zero is turned
 * into 1 so that failure never reads as success. exit() and returning from
 * main() end up here.
 */
#ifndef CHUNKPROV_QEMU_SEMIHOST_H
#define CHUNKPROV_QEMU_SEMIHOST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Write len bytes to the host's stdout (fd 1) or stderr (fd 2). Unbuffered. */
void semihost_write(int fd, const char *buf, size_t len);

/* Write a NUL-terminated string to the host's stdout, without a newline. */
void semihost_puts(const char *s);

/* End the emulation; QEMU's exit status becomes status (see above). */
__attribute__((noreturn)) void semihost_exit(int status);

#ifdef __cplusplus
}
#endif

#endif /* CHUNKPROV_QEMU_SEMIHOST_H */
