/*
 * Start-up code for C tests on QEMU's mps2-an505 (Cortex-M33, Secure state).
 *
 * Reset_Handler: sets MSPLIM (stack overflow -> fault instead of silently
 * overwriting the heap), copies .data, zeroes .bss, enables the FPU when
 * built for an FPU (CPACR CP10/CP11), runs .init_array (constructors), then
 * exit(main()). exit() flushes stdio and ends QEMU with main's return value.
 *
 * Fault handlers print the exception name, stacked PC/LR and fault status
 * registers to stdout and exit with status 100 + exception number:
 *   102 NMI, 103 HardFault, 104 MemManage, 105 BusFault, 106 UsageFault,
 *   107 SecureFault, 111 SVCall, 112 DebugMonitor, 114 PendSV,
 *   99 any external interrupt (SysTick belongs to bench_clock.c).
 * Configurable faults are not enabled, so they normally escalate to HardFault
 * (103); the CFSR value in the message tells the original cause (e.g.
 * 0x00100000 STKOF = stack overflow, 0x00080000 NOCP = FPU off,
 * 0x00000100 IBUSERR = bad branch target). abort()/assert failure exits 98
 * (semihost.c). A fault inside this handler locks the CPU up, which QEMU
 * turns into its own abort (exit status 134).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "semihost.h"

int main(void);

/* Linker script symbols (mps2_an505.ld). */
extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_limit[], __stack_top[];
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

#define REG32(addr) (*(volatile uint32_t *)(addr))
#define SCB_CPACR REG32(0xE000ED88u)
#define SCB_CFSR REG32(0xE000ED28u)
#define SCB_HFSR REG32(0xE000ED2Cu)
#define SCB_MMFAR REG32(0xE000ED34u)
#define SCB_BFAR REG32(0xE000ED38u)
#define SAU_SFSR REG32(0xE000EDE4u)
#define SAU_SFAR REG32(0xE000EDE8u)

__attribute__((noreturn)) void Reset_Handler(void);
void Fault_Handler(void);
void NMI_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void SecureFault_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Fault_Handler")));
void Default_IRQHandler(void) __attribute__((weak, alias("Fault_Handler")));

/* Says more about where a fault happened (stack.c: the measured call and its
 * stack budget); nothing unless something defines it. */
void harness_fault_note(void) __attribute__((weak));

/*
 * Vector table: initial SP, 15 system exceptions, then external IRQs. Only
 * the first 16 IRQs get an entry; the harness enables none. Must be at
 * VTOR_S's reset value 0x10000000 (start of the CODE region).
 */
typedef void (*vector_t)(void);
__attribute__((section(".vectors"), used)) static const vector_t vector_table[32] = {
    (vector_t)(uintptr_t)__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    SecureFault_Handler,
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
    Default_IRQHandler, Default_IRQHandler, Default_IRQHandler, Default_IRQHandler,
    Default_IRQHandler, Default_IRQHandler, Default_IRQHandler, Default_IRQHandler,
    Default_IRQHandler, Default_IRQHandler, Default_IRQHandler, Default_IRQHandler,
    Default_IRQHandler, Default_IRQHandler, Default_IRQHandler, Default_IRQHandler,
};

void Reset_Handler(void)
{
    __asm__ volatile("msr msplim, %0" : : "r"(__stack_limit));

    memcpy(__data_start, __data_load, (size_t)((char *)__data_end - (char *)__data_start));
    memset(__bss_start, 0, (size_t)((char *)__bss_end - (char *)__bss_start));

#if defined(__ARM_FP)
    /* Full access to CP10/CP11 (the FPU); must precede any FP instruction. */
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" : : : "memory");
#endif

    for (void (**f)(void) = __init_array_start; f < __init_array_end; f++) {
        (*f)();
    }

    exit(main());
}

/* ---- fault reporting ---------------------------------------------------- */

static char *put_str(char *p, const char *s)
{
    while (*s != '\0') {
        *p++ = *s++;
    }
    return p;
}

static char *put_hex(char *p, uint32_t v)
{
    p = put_str(p, "0x");
    for (int shift = 28; shift >= 0; shift -= 4) {
        *p++ = "0123456789abcdef"[(v >> shift) & 0xFu];
    }
    return p;
}

static char *put_dec(char *p, uint32_t v)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        *p++ = tmp[--n];
    }
    return p;
}

static const char *exception_name(uint32_t n)
{
    static const char *const names[16] = {
        "Thread", "Reset", "NMI", "HardFault", "MemManage", "BusFault",
        "UsageFault", "SecureFault", "Reserved", "Reserved", "Reserved",
        "SVCall", "DebugMonitor", "Reserved", "PendSV", "SysTick",
    };
    return n < 16 ? names[n] : "IRQ";
}

/*
 * Called from Fault_Handler with the stacked exception frame
 * (r0-r3, r12, lr, pc, xpsr) and EXC_RETURN. Writes one line with
 * semihosting directly: stdio state may be what got corrupted.
 */
__attribute__((noreturn, used)) void fault_report(const uint32_t *frame, uint32_t exc_return);
void fault_report(const uint32_t *frame, uint32_t exc_return)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    uint32_t n = ipsr & 0x1FFu;

    static char line[256];
    char *p = line;
    p = put_str(p, "\n*** FAULT: ");
    p = put_str(p, exception_name(n));
    p = put_str(p, " (exception ");
    p = put_dec(p, n);
    p = put_str(p, ") PC=");
    p = put_hex(p, frame[6]);
    p = put_str(p, " LR=");
    p = put_hex(p, frame[5]);
    p = put_str(p, " EXC_RETURN=");
    p = put_hex(p, exc_return);
    p = put_str(p, "\n*** CFSR=");
    p = put_hex(p, SCB_CFSR);
    p = put_str(p, " HFSR=");
    p = put_hex(p, SCB_HFSR);
    p = put_str(p, " MMFAR=");
    p = put_hex(p, SCB_MMFAR);
    p = put_str(p, " BFAR=");
    p = put_hex(p, SCB_BFAR);
    p = put_str(p, " SFSR=");
    p = put_hex(p, SAU_SFSR);
    p = put_str(p, " SFAR=");
    p = put_hex(p, SAU_SFAR);
    p = put_str(p, "\n");
    semihost_write(1, line, (size_t)(p - line));
    if (harness_fault_note) {
        harness_fault_note();
    }

    semihost_exit(n < 16 ? (int)(100 + n) : 99);
}

/*
 * Common entry for every fault/unexpected exception. Naked so that nothing
 * touches the stack before the stack limits are lifted (after a stack
 * overflow the handler itself would otherwise fault again and lock up).
 */
__attribute__((naked)) void Fault_Handler(void)
{
    __asm__ volatile(
        "movs r0, #0\n\t"
        "msr  msplim, r0\n\t"
        "msr  psplim, r0\n\t"
        "tst  lr, #4\n\t" /* EXC_RETURN.SPSEL: which stack holds the frame */
        "ite  eq\n\t"
        "mrseq r0, msp\n\t"
        "mrsne r0, psp\n\t"
        "mov  r1, lr\n\t"
        "b    fault_report\n\t");
}
