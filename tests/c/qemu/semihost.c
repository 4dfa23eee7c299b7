/*
 * Arm semihosting calls and the newlib system calls built on them.
 *
 * Why our own syscalls instead of --specs=rdimon.specs: rdimon brings its
 * own crt0 (which would fight our startup code over stack, heap and .bss),
 * opens files at start-up, and its _exit reports only "success/failure"
 * on AArch32 (QEMU maps that to 0/1). The dozen functions below are all
 * newlib-nano needs for stdio, malloc, exit and abort, and _exit uses
 * SYS_EXIT_EXTENDED so the exact status reaches QEMU's exit status.
 */
#include "semihost.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define SYS_OPEN 0x01u
#define SYS_WRITE 0x05u
#define SYS_EXIT 0x18u
#define SYS_EXIT_EXTENDED 0x20u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define ADP_STOPPED_RUNTIME_ERROR_UNKNOWN 0x20023u

/* r0 = operation, r1 = argument (usually a pointer to a parameter block). */
static uintptr_t semihost_call(uintptr_t op, uintptr_t arg)
{
    register uintptr_t r0 __asm__("r0") = op;
    register uintptr_t r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/*
 * Semihosting has no pre-opened stdio handles (QEMU's Arm-compatible
 * semihosting keeps its handles separate from the guest's fd numbers):
 * ":tt" opened for writing is stdout, opened for append is stderr.
 * Handles are kept +1 so that zero (.bss) means "not opened yet".
 */
static uintptr_t tt_handle_plus1[3];

static uintptr_t tt_handle(int fd)
{
    int idx = (fd == 2) ? 2 : 1;
    if (tt_handle_plus1[idx] == 0) {
        static const char name[] = ":tt";
        /* mode 4 = "w", mode 8 = "a"; length excludes the NUL. */
        uintptr_t block[3] = {(uintptr_t)name, (idx == 2) ? 8u : 4u, sizeof(name) - 1};
        uintptr_t h = semihost_call(SYS_OPEN, (uintptr_t)block);
        if (h == (uintptr_t)-1) {
            return (uintptr_t)-1;
        }
        tt_handle_plus1[idx] = h + 1;
    }
    return tt_handle_plus1[idx] - 1;
}

void semihost_write(int fd, const char *buf, size_t len)
{
    uintptr_t h = tt_handle(fd);
    if (h == (uintptr_t)-1 || len == 0) {
        return;
    }
    uintptr_t block[3] = {h, (uintptr_t)buf, len};
    (void)semihost_call(SYS_WRITE, (uintptr_t)block);
}

void semihost_puts(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    semihost_write(1, s, n);
}

void semihost_exit(int status)
{
    /* QEMU exits with status & 0xff: keep failures visible. */
    if (status != 0 && (status & 0xff) == 0) {
        status = 1;
    }
    uintptr_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uintptr_t)(unsigned)status};
    (void)semihost_call(SYS_EXIT_EXTENDED, (uintptr_t)block);
    /* Only reached if SYS_EXIT_EXTENDED is unsupported: plain SYS_EXIT on
     * AArch32 takes the reason in r1 and can only say 0 or "error" (1). */
    (void)semihost_call(SYS_EXIT,
                        status == 0 ? ADP_STOPPED_APPLICATION_EXIT
                                    : ADP_STOPPED_RUNTIME_ERROR_UNKNOWN);
    for (;;) {
        __asm__ volatile("bkpt 0");
    }
}

/* ---- newlib system calls ------------------------------------------------ */

int _write(int fd, const void *buf, size_t len);
int _read(int fd, void *buf, size_t len);
int _close(int fd);
int _fstat(int fd, struct stat *st);
int _isatty(int fd);
off_t _lseek(int fd, off_t off, int whence);
void *_sbrk(ptrdiff_t incr);
int _getpid(void);
int _kill(int pid, int sig);
void _exit(int status);

int _write(int fd, const void *buf, size_t len)
{
    if (fd != 1 && fd != 2) {
        errno = EBADF;
        return -1;
    }
    semihost_write(fd, buf, len);
    return (int)len;
}

/* stdin is always at end-of-file: tests take no input. */
int _read(int fd, void *buf, size_t len)
{
    (void)buf;
    (void)len;
    if (fd != 0) {
        errno = EBADF;
        return -1;
    }
    return 0;
}

int _close(int fd)
{
    (void)fd;
    return 0;
}

int _fstat(int fd, struct stat *st)
{
    if (fd < 0 || fd > 2) {
        errno = EBADF;
        return -1;
    }
    st->st_mode = S_IFCHR; /* character device: stdout is line buffered */
    return 0;
}

int _isatty(int fd)
{
    return fd >= 0 && fd <= 2;
}

off_t _lseek(int fd, off_t off, int whence)
{
    (void)fd;
    (void)off;
    (void)whence;
    errno = ESPIPE;
    return -1;
}

/* Heap: from the end of .bss up to the stack limit (see mps2_an505.ld). */
extern char __heap_start[], __heap_end[];

void *_sbrk(ptrdiff_t incr)
{
    static char *brk;
    if (brk == NULL) {
        brk = __heap_start;
    }
    if (incr > __heap_end - brk || incr < __heap_start - brk) {
        errno = ENOMEM;
        return (void *)-1;
    }
    char *old = brk;
    brk += incr;
    return old;
}

int _getpid(void)
{
    return 1;
}

/*
 * abort() (and so a failed assert()) -> raise(SIGABRT) -> _kill(): exit 98.
 * Not 134 (128 + SIGABRT), which is what QEMU itself dies with on a CPU
 * lockup (a fault while handling a fault, or no valid vector table).
 */
int _kill(int pid, int sig)
{
    (void)pid;
    (void)sig;
    semihost_exit(98);
}

void _exit(int status)
{
    semihost_exit(status);
}
