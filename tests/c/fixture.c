/*
 * Shared set-up for the C tests: see fixture.h.
 */
#include "fixture.h"

#include <stdio.h>
#include <string.h>

const uint8_t fx_nonce[CHUNKPROV_NONCE_LEN] = {0x8f, 0x1c, 0x2a, 0x9b, 0x00, 0xd4, 0xe7, 0xa1};
const char fx_thing_name[] = "dev-352656100000000";
const char fx_certificate_id[] =
    "7d2c3f0e5a1b49c8a6d4e2f0b1c3d5e7f9a8b6c4d2e0f1a3b5c7d9e1f3a5b7c9";

nor_sim fx_sim;
chunkprov_platform fx_platform;
chunkprov_reassembler fx_r;
uint32_t fx_slot_offset;
uint32_t fx_slot_size;
uint8_t fx_msg[FX_MSG_MAX];
size_t fx_msg_len;

static uint8_t flash_mem[FX_FLASH_MAX];
static uint8_t flash_map[NOR_SIM_MAP_BYTES(FX_FLASH_MAX, 1)];

/* ---- sample bundles ---- */

static fx_bundle samples[FX_KIND_COUNT];
static bool samples_built[FX_KIND_COUNT];
static char cert_pem[2048], key_pem[512], ca_pem[2048];

const fx_bundle *fx_sample(enum fx_kind kind)
{
    if (cert_pem[0] == '\0') {
        CHECK(frames_pem(cert_pem, sizeof cert_pem, "CERTIFICATE", 1500, 1) > 0);
        CHECK(frames_pem(key_pem, sizeof key_pem, "EC PRIVATE KEY", 230, 2) > 0);
        CHECK(frames_pem(ca_pem, sizeof ca_pem, "CERTIFICATE", 1300, 3) > 0);
    }
    fx_bundle *b = &samples[kind];
    if (!samples_built[kind]) {
        frames_bundle fields = {fx_thing_name, fx_certificate_id, cert_pem, NULL, ca_pem};
        if (kind == FX_KEY_CA || kind == FX_KEY_ONLY) {
            fields.private_key_pem = key_pem;
        }
        if (kind == FX_KEY_ONLY) {
            fields.server_ca_pem = NULL;
        }
        b->len = (uint32_t)frames_bundle_encode(&fields, b->bytes, sizeof b->bytes, &b->layout);
        CHECK(b->len > 0);
        samples_built[kind] = true;
    }
    return b;
}

/* ---- flash and reassembler ---- */

uint32_t fx_slot_for(uint32_t len, uint32_t es) { return (len + es - 1) / es * es; }

void fx_setup(uint32_t ws, uint32_t es, uint32_t slot_size, bool log)
{
    uint32_t capacity = es + slot_size + es;
    CHECK(capacity <= FX_FLASH_MAX);
    CHECK_EQ(nor_sim_init(&fx_sim, flash_mem, flash_map, capacity, ws, es), 0);
    fx_platform = nor_sim_platform(&fx_sim, log);
    fx_slot_offset = es;
    fx_slot_size = slot_size;
    /* The storage is whatever was there: init must not rely on zeroes. */
    memset(&fx_r, 0xA5, sizeof fx_r);
    CHECK_STATUS(chunkprov_reassembler_init(&fx_r, &fx_platform, fx_slot_offset, fx_slot_size,
                                            fx_nonce),
                 CHUNKPROV_STATUS_OK);
    nor_sim_reset_counts(&fx_sim);
}

/* ---- delivery ---- */

void fx_frame(const frames_transfer *t, uint32_t i)
{
    fx_msg_len = frames_transfer_frame(t, i, fx_msg, sizeof fx_msg);
    CHECK(fx_msg_len > 0);
}

static bool is_rejection(uint32_t st) { return st >= 64 && st <= 127; }

static chunkprov_status finish(chunkprov_status early, uint16_t *index)
{
    chunkprov_status verdict = chunkprov_reassembler_end(&fx_r, &fx_platform, index);
    if (early != CHUNKPROV_STATUS_OK) {
        CHECK_STATUS(verdict, early == CHUNKPROV_STATUS_FLASH_ERROR ? CHUNKPROV_STATUS_ABORTED
                                                                    : early);
    }
    return verdict;
}

static void note(chunkprov_status *early, chunkprov_status st)
{
    if (st != CHUNKPROV_STATUS_OK && *early == CHUNKPROV_STATUS_OK) {
        if (!is_rejection(st) && st != CHUNKPROV_STATUS_FLASH_ERROR) {
            test_fail(__FILE__, __LINE__, "feed gave %s (%d): not a rejection or FLASH_ERROR",
                      chunkprov_status_name(st), (int)st);
        }
        *early = st;
    }
}

chunkprov_status fx_deliver(const uint8_t *msg, size_t len, size_t piece, uint16_t *index)
{
    chunkprov_status early = CHUNKPROV_STATUS_OK;
    if (piece == 0) {
        piece = len;
    }
    for (size_t at = 0; at < len; at += piece) {
        size_t n = len - at < piece ? len - at : piece;
        note(&early, chunkprov_reassembler_feed(&fx_r, &fx_platform, msg + at, n));
    }
    return finish(early, index);
}

chunkprov_status fx_deliver_random(const uint8_t *msg, size_t len, size_t max_piece,
                                   uint16_t *index)
{
    chunkprov_status early = CHUNKPROV_STATUS_OK;
    size_t at = 0;
    while (at < len) {
        size_t n = 1 + fx_rand() % max_piece;
        if (n > len - at) {
            n = len - at;
        }
        note(&early, chunkprov_reassembler_feed(&fx_r, &fx_platform, msg + at, n));
        at += n;
    }
    return finish(early, index);
}

chunkprov_status fx_deliver_frame(const frames_transfer *t, uint32_t i, size_t piece,
                                  uint16_t *index)
{
    fx_frame(t, i);
    return fx_deliver(fx_msg, fx_msg_len, piece, index);
}

void fx_transfer_in_order(const frames_transfer *t, size_t piece)
{
    for (uint32_t i = 0; i < t->plan.count; i++) {
        uint16_t index = 0xFFFF;
        chunkprov_status st = fx_deliver_frame(t, i, piece, &index);
        if (i + 1 < t->plan.count) {
            CHECK_STATUS(st, CHUNKPROV_STATUS_OK);
            CHECK_EQ(index, i);
        } else {
            CHECK_STATUS(st, CHUNKPROV_STATUS_COMPLETE);
        }
    }
}

/* ---- checks ---- */

static void check_span(const char *what, chunkprov_span got, frames_span want,
                       const fx_bundle *b, bool pem)
{
    test_context("credential span: %s", what);
    if (want.len == 0) {
        CHECK_EQ(got.len, 0);
        return;
    }
    CHECK_EQ(got.offset, fx_slot_offset + want.offset);
    CHECK_EQ(got.len, want.len);
    CHECK(got.offset + got.len <= fx_sim.capacity);
    const uint8_t *in_flash = fx_sim.mem + got.offset;
    CHECK(memcmp(in_flash, b->bytes + want.offset, want.len) == 0);
    if (pem) {
        CHECK_EQ(in_flash[got.len - 1], 0);
        CHECK(memcmp(in_flash, "-----BEGIN ", 11) == 0);
        CHECK_EQ(strlen((const char *)in_flash), got.len - 1);
    } else {
        CHECK(memchr(in_flash, 0, got.len) == NULL);
    }
}

void fx_check_complete(const fx_bundle *b)
{
    CHECK(memcmp(fx_sim.mem + fx_slot_offset, b->bytes, b->len) == 0);
    chunkprov_credentials c;
    memset(&c, 0xEE, sizeof c);
    CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &c),
                 CHUNKPROV_STATUS_OK);
    check_span("thing_name", c.thing_name, b->layout.thing_name, b, false);
    CHECK_EQ(c.thing_name.len, strlen(fx_thing_name));
    CHECK(memcmp(fx_sim.mem + c.thing_name.offset, fx_thing_name, c.thing_name.len) == 0);
    check_span("certificate_id", c.certificate_id, b->layout.certificate_id, b, false);
    CHECK(memcmp(fx_sim.mem + c.certificate_id.offset, fx_certificate_id,
                 c.certificate_id.len) == 0);
    check_span("certificate", c.certificate, b->layout.certificate, b, true);
    check_span("private_key", c.private_key, b->layout.private_key, b, true);
    check_span("server_ca", c.server_ca, b->layout.server_ca, b, true);
    test_context("progress after COMPLETE");
    uint32_t tid = 0;
    uint16_t held = 0, count = 0;
    CHECK_STATUS(chunkprov_reassembler_progress(&fx_r, &tid, &held, &count),
                 CHUNKPROV_STATUS_OK);
    CHECK(count > 0);
    CHECK_EQ(held, count);
    size_t missing = 99;
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, NULL, 0, &missing), CHUNKPROV_STATUS_OK);
    CHECK_EQ(missing, 0);
}

void fx_check_clean_work(uint32_t len)
{
    CHECK_EQ(fx_sim.counts.violations, 0);
    CHECK_EQ(fx_sim.counts.erases, 1);
    CHECK_EQ(fx_sim.counts.pages, (len + fx_sim.erase_size - 1) / fx_sim.erase_size);
    CHECK_EQ(fx_sim.counts.units, (len + fx_sim.write_size - 1) / fx_sim.write_size);
}

/* ---- randomness ---- */

static uint32_t rng = 0x2545F491u;

void fx_seed(uint32_t seed) { rng = seed != 0 ? seed : 0x2545F491u; }

uint32_t fx_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

uint32_t fx_shuffled_with_duplicates(uint32_t n, uint16_t *order)
{
    uint32_t len = 0;
    for (uint32_t i = 0; i < n; i++) {
        order[len++] = (uint16_t)i;
    }
    for (uint32_t i = 0; i < n; i += 3) {
        order[len++] = (uint16_t)i;
    }
    for (uint32_t i = len - 1; i > 0; i--) {
        uint32_t j = fx_rand() % (i + 1);
        uint16_t tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    return len;
}
