/*
 * What libchunkprov.a adds to a linked Cortex-M33 image: a firmware that uses the reassembler
 * alone, or the whole provisioning client (reassembler, store, journal, JSON, SHA-256). The
 * platform callbacks are trivial; only the library's share of the map file is reported.
 */
#include <stdint.h>
#include <string.h>

#include "chunkprov.h"

static uint8_t flash[64 * 1024];

static int rd(void *ctx, uint32_t off, uint8_t *buf, uint32_t len) { (void)ctx; memcpy(buf, flash + off, len); return 0; }
static int wr(void *ctx, uint32_t off, const uint8_t *buf, uint32_t len) {
    (void)ctx;
    for (uint32_t i = 0; i < len; i++) flash[off + i] &= buf[i];
    return 0;
}
static int er(void *ctx, uint32_t off, uint32_t len) { (void)ctx; memset(flash + off, 0xFF, len); return 0; }
static int geo(void *ctx, chunkprov_geometry *g) {
    (void)ctx;
    g->write_size = 4;
    g->erase_size = 4096;
    g->capacity = sizeof flash;
    return 0;
}
static void rnd(void *ctx, uint8_t *buf, uint32_t len) { (void)ctx; memset(buf, 0x5a, len); }

static const chunkprov_platform platform = {
    .read = rd, .write = wr, .erase = er, .geometry = geo, .random = rnd,
};

/* Input the compiler cannot see through. */
volatile uint8_t input[256];

int main(void) {
    uint8_t msg[sizeof input];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = input[i];
#ifndef FOOTPRINT_CLIENT
    static chunkprov_reassembler r;
    static const uint8_t nonce[CHUNKPROV_NONCE_LEN];
    chunkprov_credentials creds;
    uint16_t missing[16];
    size_t n;
    chunkprov_reassembler_init(&r, &platform, 0, 32768, nonce);
    chunkprov_reassembler_feed(&r, &platform, msg, sizeof msg);
    chunkprov_reassembler_end(&r, &platform, NULL);
    chunkprov_reassembler_missing(&r, missing, 16, &n);
    return chunkprov_reassembler_credentials(&r, &platform, &creds) == CHUNKPROV_STATUS_OK;
#else
    static chunkprov_client c;
    static uint8_t buf[512];
    chunkprov_action a;
    const chunkprov_client_config cfg = {
        .prefix = "chunkprov", .client_id = "claim-1", .serial = "1", .csr = "MIIB",
        .packet_limit = 256, .window = 4, .max_retries = 3, .max_provisions = 3,
        .max_confirm_attempts = 3, .max_boots = 5, .timeout_ticks = 1000,
        .backoff_max_ticks = 8000, .partition_offset = 0, .partition_size = sizeof flash,
    };
    chunkprov_client_start(&c, &platform, &cfg);
    chunkprov_client_poll(&c, &platform, &cfg, buf, sizeof buf, &a);
    chunkprov_client_connected(&c);
    chunkprov_client_subscribed(&c);
    chunkprov_client_message_begin(&c, &cfg, "chunkprov/claim-1/frame", 23);
    chunkprov_client_message_data(&c, &platform, msg, sizeof msg);
    chunkprov_notice notice;
    chunkprov_client_message_end(&c, &platform, &cfg, &notice);
    chunkprov_client_tick(&c, 10);
    chunkprov_client_disconnected(&c, &platform, &cfg);
    return a.kind;
#endif
}
