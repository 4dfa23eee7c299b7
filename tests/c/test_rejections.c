/*
 * Every rejection status the library produces (64..75): malformed, truncated,
 * oversized (trailing byte), CRC, foreign nonce, out of range, inconsistent,
 * slot too small, digest mismatch, bundle invalid, flash mismatch (stale
 * bytes pre-written in the slot), stale transfer; a new transfer id dropping
 * a partial bundle; and the index chunkprov_reassembler_end reports.
 */
#include <stdio.h>
#include <string.h>

#include "chunkprov.h"
#include "fixture.h"
#include "frames.h"
#include "nor_sim.h"
#include "test.h"

static frames_transfer xfer;
static uint8_t msg[FX_MSG_MAX];
static uint8_t scratch[FRAMES_MAX_BUNDLE + 64];

static void start(enum fx_kind kind, uint32_t max_chunk, uint32_t transfer_id)
{
    const fx_bundle *b = fx_sample(kind);
    CHECK(frames_transfer_init(&xfer, b->bytes, b->len, max_chunk, fx_nonce, transfer_id));
}

/* Encodes (h, payload) into msg and delivers it; returns the verdict. */
static chunkprov_status deliver(const frames_header *h, const uint8_t *payload, uint32_t len,
                                size_t piece, uint16_t *index)
{
    size_t n = frames_encode(h, payload, len, msg, sizeof msg);
    CHECK(n > 0);
    return fx_deliver(msg, n, piece, index);
}

static void check_progress(uint32_t tid, uint16_t held, uint16_t count)
{
    uint32_t t = 0xDEADBEEFu;
    uint16_t h = 0xEEEE, c = 0xEEEE;
    CHECK_STATUS(chunkprov_reassembler_progress(&fx_r, &t, &h, &c), CHUNKPROV_STATUS_OK);
    CHECK_EQ(t, tid);
    CHECK_EQ(h, held);
    CHECK_EQ(c, count);
}

static bool is_missing(uint32_t index)
{
    static uint16_t out[FRAMES_MAX_COUNT];
    size_t missing = 0;
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, out, FRAMES_MAX_COUNT, &missing),
                 CHUNKPROV_STATUS_OK);
    for (size_t k = 0; k < missing; k++) {
        if (out[k] == index) {
            return true;
        }
    }
    return false;
}

/* Delivers every missing frame (whole messages); the last must complete. */
static void complete_missing(void)
{
    static uint16_t out[FRAMES_MAX_COUNT];
    size_t missing = 0;
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, out, FRAMES_MAX_COUNT, &missing),
                 CHUNKPROV_STATUS_OK);
    CHECK(missing > 0);
    for (size_t k = 0; k < missing; k++) {
        test_context("re-delivering missing frame %u (%lu of %lu)", out[k],
                     (unsigned long)k + 1, (unsigned long)missing);
        CHECK_STATUS(fx_deliver_frame(&xfer, out[k], 0, NULL),
                     k + 1 < missing ? CHUNKPROV_STATUS_OK : CHUNKPROV_STATUS_COMPLETE);
    }
    test_context("after re-delivery");
}

static void malformed(void)
{
    start(FX_CERT_CA, 192, 7);
    fx_setup(4, 4096, 4096, true);
    frames_header h;
    const uint8_t *payload;
    uint32_t len;
    frames_transfer_header(&xfer, 1, &h, &payload, &len);

    /* Not a frame at all: the early notice comes from feed. */
    static const uint8_t junk[] = {0x83, 0x01, 0x02, 0x03};
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, junk, sizeof junk),
                 CHUNKPROV_STATUS_FRAME_MALFORMED);
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, NULL),
                 CHUNKPROV_STATUS_FRAME_MALFORMED);
    CHECK_STATUS(fx_deliver(junk, sizeof junk, 1, NULL), CHUNKPROV_STATUS_FRAME_MALFORMED);
    CHECK(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_WARN] >= 1);

    size_t n = frames_encode(&h, payload, len, msg, sizeof msg);
    CHECK(n > 0);
    static uint8_t bad[FX_MSG_MAX];
    /* Byte patches of the good frame: position, new value, what. */
    /* 88 | 48 nonce(8) | tid 07 | index 01 | count 10 | 19 len(2) | 58 20 sha(32) | ... */
    const size_t sha_head = 16;
    struct {
        size_t at;
        uint8_t value;
        const char *what;
    } patches[] = {
        {0, 0x87, "array of 7"},
        {0, 0x89, "array of 9"},
        {0, 0x9F, "indefinite-length array"},
        {0, 0xA8, "map instead of array"},
        {1, 0x47, "nonce of 7 bytes"},
        {1, 0x68, "nonce as text"},
        {10, 0x3C, "reserved additional information"},
        {10, 0x40, "transfer id as a byte string"},
        {sha_head + 1, 0x1F, "digest of 31 bytes"},
        {sha_head, 0x78, "digest as text"},
        {n - len - 2, 0x78, "payload as a text string"},
    };
    CHECK_EQ(msg[10], 0x07); /* transfer id 7 */
    CHECK_EQ(msg[13], 0x19); /* bundle length: 2-byte argument */
    CHECK_EQ(msg[sha_head], 0x58);
    CHECK_EQ(msg[sha_head + 1], 0x20);
    CHECK_EQ(msg[n - len - 2], 0x58); /* payload: 1-byte length */
    for (size_t k = 0; k < sizeof patches / sizeof patches[0]; k++) {
        test_context("malformed: %s", patches[k].what);
        memcpy(bad, msg, n);
        bad[patches[k].at] = patches[k].value;
        CHECK_STATUS(fx_deliver(bad, n, k % 2 ? 1 : 0, NULL), CHUNKPROV_STATUS_FRAME_MALFORMED);
    }
    /* Values too wide for their field. */
    frames_header w = h;
    test_context("transfer id of 2^32");
    w.transfer_id = 0x100000000ull;
    CHECK_STATUS(deliver(&w, payload, len, 0, NULL), CHUNKPROV_STATUS_FRAME_MALFORMED);
    test_context("index of 65536");
    w = h;
    w.index = 65536;
    CHECK_STATUS(deliver(&w, payload, len, 0, NULL), CHUNKPROV_STATUS_FRAME_MALFORMED);
    test_context("count of 70000");
    w = h;
    w.count = 70000;
    CHECK_STATUS(deliver(&w, payload, len, 3, NULL), CHUNKPROV_STATUS_FRAME_MALFORMED);
    test_context("CRC of 2^32");
    w = h;
    w.crc32 = 0x100000000ull;
    CHECK_STATUS(deliver(&w, payload, len, 0, NULL), CHUNKPROV_STATUS_FRAME_MALFORMED);
    test_context("after the malformed frames");
    /* Nothing of them was taken. */
    check_progress(0, 0, 0);
    CHECK_EQ(fx_sim.counts.erases + fx_sim.counts.writes, 0);
    /* And the transfer still works. */
    fx_transfer_in_order(&xfer, 0);
    fx_check_complete(fx_sample(FX_CERT_CA));
    CHECK_EQ(fx_sim.counts.violations, 0);
}

static void truncated(void)
{
    start(FX_CERT_CA, 192, 7);
    fx_setup(4, 4096, 4096, false);
    /* A message with no bytes at all. */
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, NULL),
                 CHUNKPROV_STATUS_FRAME_TRUNCATED);
    fx_frame(&xfer, 1);
    size_t cuts[] = {0, 1, 10, 60, fx_msg_len - 100, fx_msg_len - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        test_context("cut after %lu of %lu bytes", (unsigned long)cuts[k],
                     (unsigned long)fx_msg_len);
        CHECK_STATUS(fx_deliver(fx_msg, cuts[k], 3, NULL), CHUNKPROV_STATUS_FRAME_TRUNCATED);
        CHECK(is_missing(1) || cuts[k] < 60);
    }
    test_context("after the cuts");
    CHECK_STATUS(fx_deliver(fx_msg, fx_msg_len, 0, NULL), CHUNKPROV_STATUS_OK);
    CHECK_EQ(fx_sim.counts.violations, 0);
}

static void oversized(void)
{
    start(FX_CERT_CA, 192, 7);
    fx_setup(4, 4096, 4096, false);
    fx_frame(&xfer, 0);
    fx_msg[fx_msg_len] = 0x00;
    CHECK_STATUS(fx_deliver(fx_msg, fx_msg_len + 1, 50, NULL), CHUNKPROV_STATUS_FRAME_OVERSIZED);
    CHECK_STATUS(fx_deliver(fx_msg, fx_msg_len + 1, 0, NULL), CHUNKPROV_STATUS_FRAME_OVERSIZED);
    /* A whole second frame appended. */
    memcpy(fx_msg + fx_msg_len, fx_msg, fx_msg_len);
    CHECK_STATUS(fx_deliver(fx_msg, 2 * fx_msg_len, 1, NULL), CHUNKPROV_STATUS_FRAME_OVERSIZED);
    CHECK(is_missing(0));
    /* Alone it is taken (its bytes already in flash are left as they are). */
    CHECK_STATUS(fx_deliver(fx_msg, fx_msg_len, 0, NULL), CHUNKPROV_STATUS_OK);
    CHECK(!is_missing(0));
    CHECK_EQ(fx_sim.counts.violations, 0);
}

static void crc(void)
{
    start(FX_CERT_CA, 192, 7);
    fx_setup(4, 1024, 4096, false);
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, NULL), CHUNKPROV_STATUS_OK);
    frames_header h;
    const uint8_t *payload;
    uint32_t len;
    frames_transfer_header(&xfer, 2, &h, &payload, &len);
    memcpy(scratch, payload, len);
    scratch[5] ^= 0x20;
    CHECK_STATUS(deliver(&h, scratch, len, 16, NULL), CHUNKPROV_STATUS_FRAME_CRC);
    CHECK(is_missing(2));
    check_progress(7, 1, (uint16_t)xfer.plan.count);
    /* The CRC is checked at the end of the frame: one wrong header CRC too. */
    frames_transfer_header(&xfer, 3, &h, &payload, &len);
    h.crc32 ^= 1;
    CHECK_STATUS(deliver(&h, payload, len, 0, NULL), CHUNKPROV_STATUS_FRAME_CRC);
    CHECK(is_missing(3));
    /* The bundle still completes; a frame whose damaged payload already went to
     * flash comes back as FLASH_MISMATCH (see complete_missing). */
    static uint16_t out[FRAMES_MAX_COUNT];
    size_t missing = 0;
    for (int round = 0; round < 3; round++) {
        CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, out, FRAMES_MAX_COUNT, &missing),
                     CHUNKPROV_STATUS_OK);
        if (missing == 0) {
            break;
        }
        for (size_t k = 0; k < missing; k++) {
            chunkprov_status st = fx_deliver_frame(&xfer, out[k], 0, NULL);
            CHECK(st == CHUNKPROV_STATUS_OK || st == CHUNKPROV_STATUS_COMPLETE ||
                  st == CHUNKPROV_STATUS_FLASH_MISMATCH);
        }
    }
    CHECK_EQ(missing, 0);
    fx_check_complete(fx_sample(FX_CERT_CA));
    CHECK_EQ(fx_sim.counts.violations, 0);
}

static void foreign_nonce(void)
{
    start(FX_CERT_CA, 192, 7);
    fx_setup(4, 4096, 4096, false);
    frames_header h;
    const uint8_t *payload;
    uint32_t len;
    frames_transfer_header(&xfer, 1, &h, &payload, &len);
    h.nonce[7] ^= 1;
    /* As the first frame: no transfer starts, nothing is erased or written. */
    CHECK_STATUS(deliver(&h, payload, len, 16, NULL), CHUNKPROV_STATUS_FOREIGN_NONCE);
    check_progress(0, 0, 0);
    CHECK_EQ(fx_sim.counts.erases + fx_sim.counts.writes, 0);
    /* In the middle of a transfer: nothing is written. */
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, NULL), CHUNKPROV_STATUS_OK);
    uint32_t writes = fx_sim.counts.writes, erases = fx_sim.counts.erases;
    memset(h.nonce, 0, sizeof h.nonce);
    CHECK_STATUS(deliver(&h, payload, len, 0, NULL), CHUNKPROV_STATUS_FOREIGN_NONCE);
    CHECK_EQ(fx_sim.counts.writes, writes);
    CHECK_EQ(fx_sim.counts.erases, erases);
    check_progress(7, 1, (uint16_t)xfer.plan.count);
    CHECK(is_missing(1));
}

static void out_of_range(void)
{
    start(FX_CERT_CA, 192, 7);
    fx_setup(4, 4096, 16384, false);
    frames_header h, w;
    const uint8_t *payload;
    uint32_t len;
    frames_transfer_header(&xfer, 1, &h, &payload, &len);
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, NULL), CHUNKPROV_STATUS_OK);
    uint32_t writes = fx_sim.counts.writes;

    test_context("index == count");
    w = h;
    w.index = h.count;
    CHECK_STATUS(deliver(&w, payload, len, 16, NULL), CHUNKPROV_STATUS_FRAME_OUT_OF_RANGE);
    test_context("index 65535");
    w.index = 65535;
    CHECK_STATUS(deliver(&w, payload, len, 0, NULL), CHUNKPROV_STATUS_FRAME_OUT_OF_RANGE);
    test_context("payload one byte short");
    w = h;
    w.crc32 = crc32_of(payload + 1, len - 1);
    CHECK_STATUS(deliver(&w, payload + 1, len - 1, 16, NULL),
                 CHUNKPROV_STATUS_FRAME_OUT_OF_RANGE);
    test_context("payload one byte long");
    memcpy(scratch, payload, len);
    scratch[len] = 'x';
    w.crc32 = crc32_of(scratch, len + 1);
    CHECK_STATUS(deliver(&w, scratch, len + 1, 0, NULL), CHUNKPROV_STATUS_FRAME_OUT_OF_RANGE);
    test_context("last frame with a full chunk");
    frames_transfer_header(&xfer, xfer.plan.count - 1, &w, &payload, &len);
    CHECK(len < xfer.plan.chunk);
    memset(scratch, 'A', xfer.plan.chunk);
    w.crc32 = crc32_of(scratch, xfer.plan.chunk);
    CHECK_STATUS(deliver(&w, scratch, xfer.plan.chunk, 0, NULL),
                 CHUNKPROV_STATUS_FRAME_OUT_OF_RANGE);

    /* Length/count pairs no transfer produces (checked with a fresh frame 0). */
    struct {
        uint64_t bundle_len, count;
        const char *what;
    } pairs[] = {
        {0, 1, "bundle length 0"},
        {100, 0, "count 0"},
        {9, 4, "9 bytes in 4 frames"},
        {FRAMES_MAX_BUNDLE + 1, 520, "bundle over 16 KiB"},
        {FRAMES_MAX_BUNDLE, FRAMES_MAX_COUNT + 1, "257 frames"},
        {3000, 200, "3000 bytes in 200 frames"},
    };
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        test_context("%s", pairs[k].what);
        w = h;
        w.index = 0;
        w.bundle_len = pairs[k].bundle_len;
        w.count = pairs[k].count;
        memset(scratch, 'B', 32);
        w.crc32 = crc32_of(scratch, 32);
        CHECK_STATUS(deliver(&w, scratch, 32, 0, NULL), CHUNKPROV_STATUS_FRAME_OUT_OF_RANGE);
    }
    test_context("after");
    CHECK_EQ(fx_sim.counts.writes, writes);
    check_progress(7, 1, (uint16_t)xfer.plan.count);
}

static void inconsistent(void)
{
    start(FX_CERT_CA, 192, 7);
    fx_setup(4, 4096, 16384, false);
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, NULL), CHUNKPROV_STATUS_OK);
    frames_header h, w;
    const uint8_t *payload;
    uint32_t len;
    frames_transfer_header(&xfer, 1, &h, &payload, &len);
    uint32_t writes = fx_sim.counts.writes;

    test_context("another digest");
    w = h;
    w.sha256[31] ^= 0x80;
    CHECK_STATUS(deliver(&w, payload, len, 16, NULL), CHUNKPROV_STATUS_FRAME_INCONSISTENT);

    /* Another bundle length and another count, each a valid pair on its own. */
    frames_plan p;
    uint32_t other_len = xfer.plan.bundle_len + 1;
    CHECK(frames_plan_from_header(other_len, xfer.plan.count, &p));
    test_context("bundle length %lu instead of %lu", (unsigned long)other_len,
                 (unsigned long)xfer.plan.bundle_len);
    uint32_t off, flen;
    frames_plan_frame(&p, 1, &off, &flen);
    w = h;
    w.bundle_len = other_len;
    memset(scratch, 'C', flen);
    w.crc32 = crc32_of(scratch, flen);
    CHECK_STATUS(deliver(&w, scratch, flen, 0, NULL), CHUNKPROV_STATUS_FRAME_INCONSISTENT);

    uint32_t other_count = 0;
    for (uint32_t c = 1; c <= FRAMES_MAX_COUNT; c++) {
        if (c != xfer.plan.count && frames_plan_from_header(xfer.plan.bundle_len, c, &p)) {
            other_count = c;
            break;
        }
    }
    CHECK(other_count != 0);
    test_context("count %lu instead of %lu", (unsigned long)other_count,
                 (unsigned long)xfer.plan.count);
    frames_plan_frame(&p, 0, &off, &flen);
    w = h;
    w.count = other_count;
    w.index = 0;
    w.crc32 = crc32_of(xfer.bundle, flen);
    CHECK_STATUS(deliver(&w, xfer.bundle, flen, 0, NULL), CHUNKPROV_STATUS_FRAME_INCONSISTENT);
    test_context("after");
    CHECK_EQ(fx_sim.counts.writes, writes);
    check_progress(7, 1, (uint16_t)xfer.plan.count);
    /* The real frames still complete the transfer. */
    complete_missing();
    fx_check_complete(fx_sample(FX_CERT_CA));
}

static void slot_too_small(void)
{
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    start(FX_CERT_CA, 192, 7);
    /* A slot of 2 KiB for a ~2.9 KB bundle. */
    fx_setup(4, 1024, 2048, false);
    CHECK(b->len > 2048);
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, NULL), CHUNKPROV_STATUS_SLOT_TOO_SMALL);
    CHECK_STATUS(fx_deliver_frame(&xfer, 1, 5, NULL), CHUNKPROV_STATUS_SLOT_TOO_SMALL);
    check_progress(0, 0, 0);
    CHECK_EQ(fx_sim.counts.erases + fx_sim.counts.writes, 0);
    /* Exactly the bundle's size rounded to pages fits. */
    fx_setup(4, 1024, fx_slot_for(b->len, 1024), false);
    fx_transfer_in_order(&xfer, 0);
    fx_check_complete(b);
}

static void digest_mismatch_restarts_the_transfer(void)
{
    start(FX_CERT_CA, 512, 3);
    fx_setup(4, 4096, 4096, true);
    frames_header h;
    const uint8_t *payload;
    uint32_t len;
    for (uint32_t i = 0; i < xfer.plan.count; i++) {
        frames_transfer_header(&xfer, i, &h, &payload, &len);
        memset(h.sha256, 7, sizeof h.sha256);
        CHECK_STATUS(deliver(&h, payload, len, 100, NULL),
                     i + 1 < xfer.plan.count ? CHUNKPROV_STATUS_OK
                                             : CHUNKPROV_STATUS_DIGEST_MISMATCH);
    }
    /* The transfer starts over. */
    check_progress(0, 0, 0);
    size_t missing = 99;
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, NULL, 0, &missing), CHUNKPROV_STATUS_OK);
    CHECK_EQ(missing, 0);
    chunkprov_credentials c;
    CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &c),
                 CHUNKPROV_STATUS_NOT_COMPLETE);
    /* The right frames of the same transfer id then complete in the same slot. */
    nor_sim_reset_counts(&fx_sim);
    fx_transfer_in_order(&xfer, 100);
    fx_check_complete(fx_sample(FX_CERT_CA));
    fx_check_clean_work(xfer.plan.bundle_len);
}

/* Sends `bundle` (any bytes) as transfer tid and expects BUNDLE_INVALID at the
 * end, then checks the transfer started over. */
static void expect_invalid_bundle(const uint8_t *bundle, uint32_t len, uint32_t tid)
{
    frames_transfer t;
    CHECK(frames_transfer_init(&t, bundle, len, 512, fx_nonce, tid));
    for (uint32_t i = 0; i < t.plan.count; i++) {
        CHECK_STATUS(fx_deliver_frame(&t, i, 0, NULL),
                     i + 1 < t.plan.count ? CHUNKPROV_STATUS_OK
                                          : CHUNKPROV_STATUS_BUNDLE_INVALID);
    }
    check_progress(0, 0, 0);
    chunkprov_credentials c;
    CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &c),
                 CHUNKPROV_STATUS_NOT_COMPLETE);
}

static void bundle_invalid_restarts_the_transfer(void)
{
    const fx_bundle *good = fx_sample(FX_KEY_CA);
    fx_setup(4, 4096, 8192, false);
    uint32_t tid = 1;

    test_context("3000 bytes of junk");
    for (uint32_t i = 0; i < 3000; i++) {
        scratch[i] = (uint8_t)(i * 13);
    }
    expect_invalid_bundle(scratch, 3000, tid++);

    test_context("a byte after the bundle");
    memcpy(scratch, good->bytes, good->len);
    scratch[good->len] = CBOR_NULL;
    expect_invalid_bundle(scratch, good->len + 1, tid++);

    test_context("bundle cut one byte short");
    expect_invalid_bundle(good->bytes, good->len - 1, tid++);

    test_context("certificate without its NUL");
    memcpy(scratch, good->bytes, good->len);
    scratch[good->layout.certificate.offset + good->layout.certificate.len - 1] = '\n';
    expect_invalid_bundle(scratch, good->len, tid++);

    test_context("array of 4");
    memcpy(scratch, good->bytes, good->len);
    scratch[0] = 0x84;
    expect_invalid_bundle(scratch, good->len, tid++);

    test_context("certificate null");
    {
        frames_bundle f = {"thing", "c0ffee", "-----BEGIN CERTIFICATE-----\nAA\n", NULL, NULL};
        uint32_t n = (uint32_t)frames_bundle_encode(&f, scratch, sizeof scratch, NULL);
        CHECK(n > 0);
        /* Replace the certificate item by null: 85 65 thing 66 c0ffee F6 F6 F6. */
        uint32_t cert_at = 1 + 6 + 7;
        scratch[cert_at] = CBOR_NULL;
        scratch[cert_at + 1] = CBOR_NULL;
        scratch[cert_at + 2] = CBOR_NULL;
        expect_invalid_bundle(scratch, cert_at + 3, tid++);
    }

    test_context("thing name of 0 bytes");
    {
        frames_bundle f = {"", "c0ffee", "-----BEGIN CERTIFICATE-----\nAA\n", NULL, NULL};
        uint32_t n = (uint32_t)frames_bundle_encode(&f, scratch, sizeof scratch, NULL);
        expect_invalid_bundle(scratch, n, tid++);
    }

    test_context("a long head where a short one fits");
    {
        frames_bundle f = {"thing", "c0ffee", "-----BEGIN CERTIFICATE-----\nAA\n", NULL, NULL};
        uint32_t n = (uint32_t)frames_bundle_encode(&f, scratch + 1, sizeof scratch - 1, NULL);
        scratch[0] = 0x85;
        scratch[1] = 0x78; /* text, 1-byte length */
        scratch[2] = 5;    /* "thing" */
        expect_invalid_bundle(scratch, n + 1, tid++);
    }

    test_context("then the real bundle in the same slot");
    CHECK(frames_transfer_init(&xfer, good->bytes, good->len, 512, fx_nonce, tid));
    fx_transfer_in_order(&xfer, 0);
    fx_check_complete(good);
    CHECK_EQ(fx_sim.counts.violations, 0);
}

static void flash_mismatch_erases_the_page(void)
{
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    start(FX_CERT_CA, 192, 7);
    uint32_t chunk = xfer.plan.chunk;
    CHECK_EQ(chunk, 192);
    fx_setup(4, 1024, 4096, true);
    for (uint32_t i = 0; i < 4; i++) {
        CHECK_STATUS(fx_deliver_frame(&xfer, i, 32, NULL), CHUNKPROV_STATUS_OK);
    }
    for (uint32_t i = 6; i < 9; i++) {
        CHECK_STATUS(fx_deliver_frame(&xfer, i, 32, NULL), CHUNKPROV_STATUS_OK);
    }
    /* Something left other bytes where frame 5 goes (bundle bytes 960..1151:
     * pages 0 and 1 of the slot). */
    uint32_t at = fx_slot_offset + 5 * chunk;
    static const uint8_t stale[4] = {0x00, 0x11, 0x22, 0x33};
    CHECK_EQ(nor_sim_program(&fx_sim, at, stale, 4), 0);
    uint32_t pages = fx_sim.counts.pages;
    uint32_t warn = fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_WARN];
    CHECK_STATUS(fx_deliver_frame(&xfer, 5, 32, NULL), CHUNKPROV_STATUS_FLASH_MISMATCH);
    CHECK(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_WARN] > warn);
    /* That page was erased ... */
    CHECK_EQ(fx_sim.counts.pages, pages + 1);
    uint32_t page = at / 1024 * 1024;
    for (uint32_t o = page; o < page + 1024; o++) {
        CHECK_EQ(fx_sim.mem[o], 0xFF);
    }
    /* ... and every held frame touching it is missing again, the others not. */
    for (uint32_t i = 0; i < xfer.plan.count; i++) {
        uint32_t start_at = fx_slot_offset + i * chunk;
        bool touches = start_at < page + 1024 && start_at + chunk > page;
        bool was_held = i < 4 || (i >= 6 && i < 9);
        test_context("frame %lu (touches the page: %d)", (unsigned long)i, touches);
        CHECK_EQ(is_missing(i), touches || !was_held);
    }
    test_context("re-delivery");
    complete_missing();
    fx_check_complete(b);
    CHECK_EQ(fx_sim.counts.violations, 0);

    /* Stale bytes in a page no held frame touches: only the frame is asked again. */
    fx_setup(4, 1024, 4096, false);
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, NULL), CHUNKPROV_STATUS_OK);
    at = fx_slot_offset + 12 * chunk + 64; /* bundle byte 2368: page 2 */
    CHECK_EQ(nor_sim_program(&fx_sim, at, stale, 4), 0);
    CHECK_STATUS(fx_deliver_frame(&xfer, 12, 0, NULL), CHUNKPROV_STATUS_FLASH_MISMATCH);
    check_progress(7, 1, (uint16_t)xfer.plan.count);
    CHECK(!is_missing(0) && is_missing(12));
    complete_missing();
    fx_check_complete(b);
    CHECK_EQ(fx_sim.counts.violations, 0);
}

static void stale_transfer(void)
{
    start(FX_CERT_CA, 192, 7);
    fx_setup(4, 4096, 4096, false);
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, NULL), CHUNKPROV_STATUS_OK);
    frames_transfer old;
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    CHECK(frames_transfer_init(&old, b->bytes, b->len, 192, fx_nonce, 6));
    uint32_t writes = fx_sim.counts.writes;
    CHECK_STATUS(fx_deliver_frame(&old, 1, 16, NULL), CHUNKPROV_STATUS_STALE_TRANSFER);
    CHECK_STATUS(fx_deliver_frame(&old, 0, 0, NULL), CHUNKPROV_STATUS_STALE_TRANSFER);
    CHECK(frames_transfer_init(&old, b->bytes, b->len, 192, fx_nonce, 0));
    CHECK_STATUS(fx_deliver_frame(&old, 2, 0, NULL), CHUNKPROV_STATUS_STALE_TRANSFER);
    CHECK_EQ(fx_sim.counts.writes, writes);
    check_progress(7, 1, (uint16_t)xfer.plan.count);
    complete_missing();
    fx_check_complete(b);
}

static void new_transfer_drops_the_partial_bundle(void)
{
    const fx_bundle *first = fx_sample(FX_KEY_CA);
    const fx_bundle *second = fx_sample(FX_CERT_CA);
    frames_transfer a;
    CHECK(frames_transfer_init(&a, first->bytes, first->len, 256, fx_nonce, 10));
    start(FX_CERT_CA, 256, 11);
    fx_setup(4, 4096, 4096, true);
    for (uint32_t i = 0; i < 5; i++) {
        CHECK_STATUS(fx_deliver_frame(&a, i, 64, NULL), CHUNKPROV_STATUS_OK);
    }
    check_progress(10, 5, (uint16_t)a.plan.count);
    uint32_t info = fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO];
    for (uint32_t k = 0; k < xfer.plan.count; k++) {
        uint32_t i = xfer.plan.count - 1 - k;
        uint16_t index = 0xFFFF;
        CHECK_STATUS(fx_deliver_frame(&xfer, i, 64, &index),
                     k + 1 < xfer.plan.count ? CHUNKPROV_STATUS_OK : CHUNKPROV_STATUS_COMPLETE);
        if (k == 0) {
            /* The partial bundle is gone: 1 of the new transfer's frames held. */
            check_progress(11, 1, (uint16_t)xfer.plan.count);
        }
    }
    CHECK(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO] > info);
    check_progress(11, (uint16_t)xfer.plan.count, (uint16_t)xfer.plan.count);
    fx_check_complete(second);
    CHECK_EQ(fx_sim.counts.erases, 2);
    CHECK_EQ(fx_sim.counts.violations, 0);
    /* The old transfer's frames are now stale. */
    CHECK_STATUS(fx_deliver_frame(&a, 6, 64, NULL), CHUNKPROV_STATUS_STALE_TRANSFER);
    /* A newer transfer after completion starts over again. */
    frames_transfer c;
    CHECK(frames_transfer_init(&c, first->bytes, first->len, 1024, fx_nonce, 12));
    chunkprov_credentials creds;
    CHECK_STATUS(fx_deliver_frame(&c, 0, 0, NULL), CHUNKPROV_STATUS_OK);
    CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &creds),
                 CHUNKPROV_STATUS_NOT_COMPLETE);
    for (uint32_t i = 1; i < c.plan.count; i++) {
        CHECK_STATUS(fx_deliver_frame(&c, i, 0, NULL),
                     i + 1 < c.plan.count ? CHUNKPROV_STATUS_OK : CHUNKPROV_STATUS_COMPLETE);
    }
    fx_check_complete(first);
}

/* Delivers frame i of xfer with its header changed by `patch` (NULL: none)
 * and checks the verdict and the index end reports. */
static void expect_index(uint32_t i, void (*patch)(frames_header *h), chunkprov_status want,
                         uint32_t want_index)
{
    frames_header h;
    const uint8_t *payload;
    uint32_t len;
    frames_transfer_header(&xfer, i, &h, &payload, &len);
    if (patch != NULL) {
        patch(&h);
    }
    uint16_t index = 0xABCD;
    CHECK_STATUS(deliver(&h, payload, len, 7, &index), want);
    CHECK_EQ(index, want_index);
}

static void bad_crc(frames_header *h) { h->crc32 ^= 1; }
static void other_nonce(frames_header *h) { h->nonce[0] ^= 1; }
static void other_digest(frames_header *h) { h->sha256[0] ^= 1; }
static void index_is_count(frames_header *h) { h->index = h->count; }
static void older_transfer(frames_header *h) { h->transfer_id--; }

/* chunkprov_reassembler_end: "If `index` is not NULL it receives the frame's
 * index whenever the header was read": for every verdict reached after the
 * header (OK, DUPLICATE, COMPLETE, rejections, ABORTED), and not when the
 * message ended (or went wrong) before the header was whole. */
static void end_reports_the_index(void)
{
    start(FX_CERT_CA, 1024, 7);
    CHECK_EQ(xfer.plan.count, 3);
    fx_setup(4, 1024, 4096, false);
    uint16_t index;

    test_context("no header");
    index = 0xABCD;
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, &index),
                 CHUNKPROV_STATUS_FRAME_TRUNCATED);
    CHECK_EQ(index, 0xABCD);
    fx_frame(&xfer, 1);
    CHECK_STATUS(fx_deliver(fx_msg, 20, 0, &index), CHUNKPROV_STATUS_FRAME_TRUNCATED);
    CHECK_EQ(index, 0xABCD);
    CHECK_STATUS(fx_deliver((const uint8_t *)"\x83\x01\x02\x03", 4, 0, &index),
                 CHUNKPROV_STATUS_FRAME_MALFORMED);
    CHECK_EQ(index, 0xABCD);

    test_context("OK");
    CHECK_STATUS(fx_deliver_frame(&xfer, 1, 0, &index), CHUNKPROV_STATUS_OK);
    CHECK_EQ(index, 1);
    test_context("DUPLICATE");
    index = 0xABCD;
    CHECK_STATUS(fx_deliver_frame(&xfer, 1, 0, &index), CHUNKPROV_STATUS_DUPLICATE);
    CHECK_EQ(index, 1);

    test_context("no header, after a frame that had one");
    index = 0xABCD;
    CHECK_STATUS(fx_deliver(fx_msg, 20, 0, &index), CHUNKPROV_STATUS_FRAME_TRUNCATED);
    CHECK_EQ(index, 0xABCD);
    CHECK_STATUS(fx_deliver((const uint8_t *)"\x83\x01\x02\x03", 4, 1, &index),
                 CHUNKPROV_STATUS_FRAME_MALFORMED);
    CHECK_EQ(index, 0xABCD);

    test_context("FRAME_TRUNCATED after the header");
    fx_frame(&xfer, 2);
    index = 0xABCD;
    CHECK_STATUS(fx_deliver(fx_msg, fx_msg_len - 10, 0, &index),
                 CHUNKPROV_STATUS_FRAME_TRUNCATED);
    CHECK_EQ(index, 2);
    test_context("FRAME_OVERSIZED");
    fx_frame(&xfer, 2);
    fx_msg[fx_msg_len] = 0x00;
    index = 0xABCD;
    CHECK_STATUS(fx_deliver(fx_msg, fx_msg_len + 1, 0, &index),
                 CHUNKPROV_STATUS_FRAME_OVERSIZED);
    CHECK_EQ(index, 2);
    test_context("FRAME_CRC");
    expect_index(2, bad_crc, CHUNKPROV_STATUS_FRAME_CRC, 2);
    test_context("FOREIGN_NONCE");
    expect_index(2, other_nonce, CHUNKPROV_STATUS_FOREIGN_NONCE, 2);
    test_context("FRAME_INCONSISTENT");
    expect_index(2, other_digest, CHUNKPROV_STATUS_FRAME_INCONSISTENT, 2);
    test_context("FRAME_OUT_OF_RANGE (index == count)");
    expect_index(2, index_is_count, CHUNKPROV_STATUS_FRAME_OUT_OF_RANGE, 3);
    test_context("STALE_TRANSFER");
    expect_index(0, older_transfer, CHUNKPROV_STATUS_STALE_TRANSFER, 0);

    /* Frame 2's bytes are in flash by now (CRC, truncated, oversized): frame 0's
     * page is still erased. */
    test_context("ABORTED (a read before a write fails)");
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_READ, 1, -5);
    index = 0xABCD;
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, &index), CHUNKPROV_STATUS_ABORTED);
    CHECK_EQ(index, 0);
    test_context("FLASH_MISMATCH");
    static const uint8_t stale[4] = {0, 0, 0, 0};
    CHECK_EQ(nor_sim_program(&fx_sim, fx_slot_offset + 64, stale, 4), 0);
    index = 0xABCD;
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, &index), CHUNKPROV_STATUS_FLASH_MISMATCH);
    CHECK_EQ(index, 0);

    test_context("COMPLETE");
    CHECK(is_missing(0) && !is_missing(1) && is_missing(2));
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, &index), CHUNKPROV_STATUS_OK);
    CHECK_EQ(index, 0);
    index = 0xABCD;
    CHECK_STATUS(fx_deliver_frame(&xfer, 2, 0, &index), CHUNKPROV_STATUS_COMPLETE);
    CHECK_EQ(index, 2);
    fx_check_complete(fx_sample(FX_CERT_CA));

    test_context("DIGEST_MISMATCH (on the last frame)");
    fx_setup(4, 1024, 4096, false);
    frames_header h;
    const uint8_t *payload;
    uint32_t len;
    for (uint32_t i = 0; i < xfer.plan.count; i++) {
        frames_transfer_header(&xfer, i, &h, &payload, &len);
        memset(h.sha256, 7, sizeof h.sha256);
        index = 0xABCD;
        CHECK_STATUS(deliver(&h, payload, len, 0, &index),
                     i + 1 < xfer.plan.count ? CHUNKPROV_STATUS_OK
                                             : CHUNKPROV_STATUS_DIGEST_MISMATCH);
        CHECK_EQ(index, i);
    }

    test_context("SLOT_TOO_SMALL");
    fx_setup(4, 1024, 2048, false);
    index = 0xABCD;
    CHECK_STATUS(fx_deliver_frame(&xfer, 1, 0, &index), CHUNKPROV_STATUS_SLOT_TOO_SMALL);
    CHECK_EQ(index, 1);
}

int main(void)
{
    static const test_case cases[] = {
        TEST_CASE(malformed),
        TEST_CASE(truncated),
        TEST_CASE(oversized),
        TEST_CASE(crc),
        TEST_CASE(foreign_nonce),
        TEST_CASE(out_of_range),
        TEST_CASE(inconsistent),
        TEST_CASE(slot_too_small),
        TEST_CASE(digest_mismatch_restarts_the_transfer),
        TEST_CASE(bundle_invalid_restarts_the_transfer),
        TEST_CASE(flash_mismatch_erases_the_page),
        TEST_CASE(stale_transfer),
        TEST_CASE(new_transfer_drops_the_partial_bundle),
        TEST_CASE(end_reports_the_index),
    };
    return test_run("test_rejections", cases, TEST_COUNT(cases));
}
