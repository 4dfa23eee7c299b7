/*
 * Speed of the reassembler per received byte: a ~4 KB bundle fed as whole frames of 64, 256
 * and 1024 payload bytes into a RAM flash, against a baseline of SHA-256 plus one copy of the
 * same bytes, measured in the same run. On the emulated Cortex-M33 the unit is instructions
 * (QEMU -icount, read from SysTick); on the host, nanoseconds (best of many runs).
 *
 * Prints one line per case: RESULT <payload> <frames> <bundle bytes> <library> <baseline>.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "chunkprov.h"
#include "frames.h"

#if defined(__arm__)
#include "bench_clock.h"
#define REPEAT 2
static void clock_start(void) { bench_clock_init(); }
static uint64_t clock_now(void) { return bench_clock_ticks_to_insns(bench_clock_now()); }
#define UNIT "instructions"
#else
#include <time.h>
#define REPEAT 400
static void clock_start(void) {}
static uint64_t clock_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#define UNIT "ns"
#endif

#define PAGE 4096u
static uint8_t flash[4 * PAGE];
static uint8_t copy[FRAMES_MAX_BUNDLE];
static uint8_t bundle[FRAMES_MAX_BUNDLE];
static uint8_t wire[FRAMES_MAX_BUNDLE + 80 * FRAMES_HEADER_MAX];
static size_t frame_at[80], frame_len[80];
static char cert[2048], key[512], ca[2048];

/* A RAM flash: the cheapest flash there is, so the figures are the library's own cost. */
static int rd(void *ctx, uint32_t off, uint8_t *buf, uint32_t len) { (void)ctx; memcpy(buf, flash + off, len); return 0; }
static int wr(void *ctx, uint32_t off, const uint8_t *buf, uint32_t len) { (void)ctx; memcpy(flash + off, buf, len); return 0; }
static int er(void *ctx, uint32_t off, uint32_t len) { (void)ctx; memset(flash + off, 0xFF, len); return 0; }
static int geo(void *ctx, chunkprov_geometry *g) {
    (void)ctx;
    g->write_size = 4;
    g->erase_size = PAGE;
    g->capacity = sizeof flash;
    return 0;
}
static const chunkprov_platform platform = { .read = rd, .write = wr, .erase = er, .geometry = geo };
static const uint8_t nonce[CHUNKPROV_NONCE_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };

static int run_library(uint32_t count) {
    static chunkprov_reassembler r;
    if (chunkprov_reassembler_init(&r, &platform, 0, 2 * PAGE, nonce) != CHUNKPROV_STATUS_OK) return 1;
    for (uint32_t i = 0; i < count; i++) {
        chunkprov_reassembler_feed(&r, &platform, wire + frame_at[i], frame_len[i]);
        chunkprov_status s = chunkprov_reassembler_end(&r, &platform, NULL);
        if (s != (i + 1 == count ? CHUNKPROV_STATUS_COMPLETE : CHUNKPROV_STATUS_OK)) {
            printf("frame %u: %s\n", (unsigned)i, chunkprov_status_name(s));
            return 1;
        }
    }
    return 0;
}

static void run_baseline(uint32_t len) {
    uint8_t digest[32];
    chunkprov_sha256(bundle, len, digest);
    memcpy(copy, bundle, len);
    __asm__ volatile("" : : "r"(digest), "r"(copy) : "memory");
}

int main(void) {
    clock_start();
    frames_pem(cert, sizeof cert, "CERTIFICATE", 1700, 1);
    frames_pem(key, sizeof key, "EC PRIVATE KEY", 230, 2);
    frames_pem(ca, sizeof ca, "CERTIFICATE", 1880, 3);
    frames_bundle b = {
        .thing_name = "dev-352656100000000",
        .certificate_id = "7d2c3f0e5a1b49c8a6d4e2f0b1c3d5e7f9a8b6c4d2e0f1a3b5c7d9e1f3a5b7c9",
        .certificate_pem = cert, .private_key_pem = key, .server_ca_pem = ca,
    };
    frames_layout layout;
    uint32_t len = (uint32_t)frames_bundle_encode(&b, bundle, sizeof bundle, &layout);
    if (len == 0) return 1;
    static const uint32_t payloads[] = { 64, 256, 1024 };
    for (size_t p = 0; p < sizeof payloads / sizeof payloads[0]; p++) {
        frames_transfer t;
        if (!frames_transfer_init(&t, bundle, len, payloads[p], nonce, 7)) return 1;
        size_t at = 0;
        for (uint32_t i = 0; i < t.plan.count; i++) {
            frame_at[i] = at;
            frame_len[i] = frames_transfer_frame(&t, i, wire + at, sizeof wire - at);
            if (frame_len[i] == 0) return 1;
            at += frame_len[i];
        }
        uint64_t best_lib = UINT64_MAX, best_base = UINT64_MAX;
        for (int rep = 0; rep < REPEAT; rep++) {
            uint64_t t0 = clock_now();
            if (run_library(t.plan.count)) return 1;
            uint64_t t1 = clock_now();
            run_baseline(len);
            uint64_t t2 = clock_now();
            if (t1 - t0 < best_lib) best_lib = t1 - t0;
            if (t2 - t1 < best_base) best_base = t2 - t1;
        }
        if (memcmp(flash, bundle, len) != 0) return 1;
        printf("RESULT %u %u %u %lu %lu %s\n", (unsigned)payloads[p], (unsigned)t.plan.count, (unsigned)len,
               (unsigned long)best_lib, (unsigned long)best_base, UNIT);
    }
    return 0;
}
