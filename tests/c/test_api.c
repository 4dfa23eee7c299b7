/*
 * The C ABI's contract outside the wire format: NULL arguments, a zeroed
 * (uninitialised) state, geometries and slots the library cannot use, flash
 * callback errors (FLASH_ERROR, then ABORTED from end), platform failures and
 * NULL data in feed (the frame is abandoned) and in end (the message ends),
 * a read-back that fails (checked again on the next delivery), the log
 * callback (the transfer-start line), and two reassemblers sharing one flash.
 */
#include <stdio.h>
#include <string.h>

#include "chunkprov.h"
#include "fixture.h"
#include "frames.h"
#include "nor_sim.h"
#include "test.h"

static frames_transfer xfer;

static void start(enum fx_kind kind, uint32_t max_chunk, uint32_t transfer_id)
{
    const fx_bundle *b = fx_sample(kind);
    CHECK(frames_transfer_init(&xfer, b->bytes, b->len, max_chunk, fx_nonce, transfer_id));
}

static void check_progress(chunkprov_reassembler *r, uint32_t tid, uint16_t held,
                           uint16_t count)
{
    uint32_t t = 0xDEADBEEFu;
    uint16_t h = 0xEEEE, c = 0xEEEE;
    CHECK_STATUS(chunkprov_reassembler_progress(r, &t, &h, &c), CHUNKPROV_STATUS_OK);
    CHECK_EQ(t, tid);
    CHECK_EQ(h, held);
    CHECK_EQ(c, count);
}

static bool contains(const char *haystack, const char *needle)
{
    return strstr(haystack, needle) != NULL;
}

static void null_arguments(void)
{
    static chunkprov_reassembler r;
    fx_setup(4, 4096, 4096, true);
    chunkprov_platform p = fx_platform;
    const uint8_t byte = 0x88;
    uint16_t u16;
    uint32_t u32;
    size_t missing;
    uint16_t out[4];
    chunkprov_credentials creds;

    /* init */
    CHECK_STATUS(chunkprov_reassembler_init(NULL, &p, fx_slot_offset, fx_slot_size, fx_nonce),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_init(&r, NULL, fx_slot_offset, fx_slot_size, fx_nonce),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_init(&r, &p, fx_slot_offset, fx_slot_size, NULL),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    for (int which = 0; which < 4; which++) {
        chunkprov_platform q = fx_platform;
        test_context("init: platform callback %d NULL", which);
        switch (which) {
        case 0: q.read = NULL; break;
        case 1: q.write = NULL; break;
        case 2: q.erase = NULL; break;
        default: q.geometry = NULL; break;
        }
        CHECK_STATUS(chunkprov_reassembler_init(&r, &q, fx_slot_offset, fx_slot_size, fx_nonce),
                     CHUNKPROV_STATUS_NULL_ARGUMENT);
        /* The same platform is refused by every call that takes one. */
        CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &q, &byte, 1),
                     CHUNKPROV_STATUS_NULL_ARGUMENT);
        CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &q, NULL), CHUNKPROV_STATUS_NULL_ARGUMENT);
        CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &q, &creds),
                     CHUNKPROV_STATUS_NULL_ARGUMENT);
    }
    test_context("log callback may be NULL");
    chunkprov_platform no_log = fx_platform;
    no_log.log = NULL;
    CHECK_STATUS(chunkprov_reassembler_init(&r, &no_log, fx_slot_offset, fx_slot_size, fx_nonce),
                 CHUNKPROV_STATUS_OK);

    test_context("feed");
    CHECK_STATUS(chunkprov_reassembler_feed(NULL, &p, &byte, 1), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_feed(&r, NULL, &byte, 1), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_feed(&r, &p, NULL, 1), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_feed(&r, &p, NULL, 0), CHUNKPROV_STATUS_OK);
    test_context("end");
    CHECK_STATUS(chunkprov_reassembler_end(NULL, &p, &u16), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_end(&r, NULL, &u16), CHUNKPROV_STATUS_NULL_ARGUMENT);
    test_context("progress");
    CHECK_STATUS(chunkprov_reassembler_progress(NULL, &u32, &u16, &u16),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_progress(&r, NULL, NULL, NULL), CHUNKPROV_STATUS_OK);
    test_context("missing");
    CHECK_STATUS(chunkprov_reassembler_missing(NULL, out, 4, &missing),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_missing(&r, out, 4, NULL), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_missing(&r, NULL, 4, &missing),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_missing(&r, NULL, 0, &missing), CHUNKPROV_STATUS_OK);
    test_context("credentials");
    CHECK_STATUS(chunkprov_reassembler_credentials(NULL, &p, &creds),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_credentials(&r, NULL, &creds),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_credentials(&r, &p, NULL), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_credentials(&r, &p, &creds), CHUNKPROV_STATUS_NOT_COMPLETE);
    test_context("sha256");
    uint8_t digest[32];
    CHECK_STATUS(chunkprov_sha256(&byte, 1, NULL), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_sha256(NULL, 1, digest), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_sha256(NULL, 0, digest), CHUNKPROV_STATUS_OK);
    /* None of this touched the flash. */
    CHECK_EQ(fx_sim.counts.writes + fx_sim.counts.erases, 0);
    CHECK_EQ(fx_sim.counts.violations, 0);
}

static void zeroed_state_is_not_initialised(void)
{
    static chunkprov_reassembler r;
    fx_setup(4, 4096, 4096, false);
    memset(&r, 0, sizeof r);
    start(FX_CERT_CA, 512, 1);
    fx_frame(&xfer, 0);
    uint16_t index = 0xABCD;
    uint32_t tid;
    size_t missing = 7;
    uint16_t out[4];
    chunkprov_credentials creds;
    CHECK_STATUS(chunkprov_reassembler_feed(&r, &fx_platform, fx_msg, fx_msg_len),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_STATUS(chunkprov_reassembler_end(&r, &fx_platform, &index),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_EQ(index, 0xABCD);
    CHECK_STATUS(chunkprov_reassembler_progress(&r, &tid, NULL, NULL),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_STATUS(chunkprov_reassembler_missing(&r, out, 4, &missing),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_STATUS(chunkprov_reassembler_credentials(&r, &fx_platform, &creds),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_EQ(fx_sim.counts.writes + fx_sim.counts.erases, 0);
    /* A failed init leaves a zeroed state uninitialised. */
    CHECK_STATUS(chunkprov_reassembler_init(&r, &fx_platform, 100, 4096, fx_nonce),
                 CHUNKPROV_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(chunkprov_reassembler_progress(&r, &tid, NULL, NULL),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    /* Initialised, it works. */
    CHECK_STATUS(chunkprov_reassembler_init(&r, &fx_platform, fx_slot_offset, fx_slot_size,
                                            fx_nonce),
                 CHUNKPROV_STATUS_OK);
    check_progress(&r, 0, 0, 0);
}

/* A platform whose geometry callback reports what the test wants, over the
 * simulated flash. */
static chunkprov_geometry fake_geometry;
static int fake_geometry_rc;

static int fake_geometry_cb(void *ctx, chunkprov_geometry *out)
{
    (void)ctx;
    *out = fake_geometry;
    return fake_geometry_rc;
}

static void invalid_geometry(void)
{
    static chunkprov_reassembler r;
    fx_setup(1, 65536, 65536, true); /* capacity 192 KiB */
    chunkprov_platform p = fx_platform;
    p.geometry = fake_geometry_cb;
    fake_geometry_rc = 0;
    static const struct {
        uint32_t write_size, erase_size;
        chunkprov_status want;
    } g[] = {
        {0, 4096, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {3, 4096, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {12, 4096, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {33, 4096, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {64, 4096, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {0x80000000u, 0x80000000u, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {4, 0, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {4, 3000, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {4, 4097, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {32, 16, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {4, 2, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        /* Usable ones, for contrast. */
        {1, 1, CHUNKPROV_STATUS_OK},
        {2, 4096, CHUNKPROV_STATUS_OK},
        {8, 256, CHUNKPROV_STATUS_OK},
        {32, 32, CHUNKPROV_STATUS_OK},
        {32, 65536, CHUNKPROV_STATUS_OK},
    };
    for (size_t k = 0; k < sizeof g / sizeof g[0]; k++) {
        test_context("write_size %lu erase_size %lu", (unsigned long)g[k].write_size,
                     (unsigned long)g[k].erase_size);
        fake_geometry.write_size = g[k].write_size;
        fake_geometry.erase_size = g[k].erase_size;
        fake_geometry.capacity = fx_sim.capacity;
        uint32_t errors = fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_ERROR];
        memset(&r, 0, sizeof r);
        CHECK_STATUS(chunkprov_reassembler_init(&r, &p, 65536, 65536, fx_nonce), g[k].want);
        if (g[k].want != CHUNKPROV_STATUS_OK) {
            CHECK(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_ERROR] > errors);
            CHECK_STATUS(chunkprov_reassembler_progress(&r, NULL, NULL, NULL),
                         CHUNKPROV_STATUS_NOT_INITIALIZED);
        }
    }
    CHECK_EQ(fx_sim.log.bad, 0);
}

static void invalid_slot(void)
{
    static chunkprov_reassembler r;
    fx_setup(4, 4096, 8192, true); /* capacity 16 KiB */
    uint32_t cap = fx_sim.capacity;
    CHECK_EQ(cap, 16384);
    static const struct {
        uint32_t offset, size;
        chunkprov_status want;
    } s[] = {
        {100, 4096, CHUNKPROV_STATUS_INVALID_ARGUMENT},     /* offset not on a page */
        {4096, 4097, CHUNKPROV_STATUS_INVALID_ARGUMENT},    /* size not whole pages */
        {4096, 2048, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {4096, 0, CHUNKPROV_STATUS_INVALID_ARGUMENT},       /* empty */
        {8192, 12288, CHUNKPROV_STATUS_INVALID_ARGUMENT},   /* past the end */
        {16384, 4096, CHUNKPROV_STATUS_INVALID_ARGUMENT},   /* starts at the end */
        {0xFFFFF000u, 0x2000, CHUNKPROV_STATUS_INVALID_ARGUMENT}, /* wraps around */
        {0, 0xFFFFF000u, CHUNKPROV_STATUS_INVALID_ARGUMENT},
        {0, 16384, CHUNKPROV_STATUS_OK},                    /* the whole flash */
        {12288, 4096, CHUNKPROV_STATUS_OK},                 /* the last page */
    };
    for (size_t k = 0; k < sizeof s / sizeof s[0]; k++) {
        test_context("slot 0x%lx + 0x%lx", (unsigned long)s[k].offset,
                     (unsigned long)s[k].size);
        memset(&r, 0, sizeof r);
        CHECK_STATUS(chunkprov_reassembler_init(&r, &fx_platform, s[k].offset, s[k].size,
                                                fx_nonce),
                     s[k].want);
    }
    CHECK_EQ(fx_sim.counts.writes + fx_sim.counts.erases, 0);
}

static void geometry_callback_error(void)
{
    static chunkprov_reassembler r;
    fx_setup(4, 4096, 4096, true);
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_GEOMETRY, 1, -7);
    memset(&r, 0, sizeof r);
    CHECK_STATUS(chunkprov_reassembler_init(&r, &fx_platform, fx_slot_offset, fx_slot_size,
                                            fx_nonce),
                 CHUNKPROV_STATUS_FLASH_ERROR);
    CHECK(contains(fx_sim.log.last_error, "-7"));
    CHECK_STATUS(chunkprov_reassembler_progress(&r, NULL, NULL, NULL),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    /* The same in credentials. */
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    start(FX_CERT_CA, 1024, 1);
    fx_transfer_in_order(&xfer, 0);
    chunkprov_credentials creds;
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_GEOMETRY, 1, -8);
    CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &creds),
                 CHUNKPROV_STATUS_FLASH_ERROR);
    CHECK(contains(fx_sim.log.last_error, "-8"));
    fx_check_complete(b);
}

static void flash_errors_abort_the_frame(void)
{
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    start(FX_CERT_CA, 256, 1);
    fx_setup(4, 4096, 4096, true);

    test_context("the erase that starts the transfer fails");
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_ERASE, 1, -5);
    fx_frame(&xfer, 0);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg, fx_msg_len),
                 CHUNKPROV_STATUS_FLASH_ERROR);
    uint16_t index = 0xABCD;
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, &index),
                 CHUNKPROV_STATUS_ABORTED);
    CHECK_EQ(index, 0); /* the header was read */
    CHECK(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_ERROR] >= 1);
    CHECK(contains(fx_sim.log.last_error, "-5"));
    check_progress(&fx_r, 0, 0, 0);

    test_context("a write fails (piece by piece)");
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_WRITE, 1, -123);
    CHECK_STATUS(fx_deliver(fx_msg, fx_msg_len, 10, NULL), CHUNKPROV_STATUS_ABORTED);
    CHECK(contains(fx_sim.log.last_error, "-123"));
    check_progress(&fx_r, 1, 0, (uint16_t)xfer.plan.count);

    test_context("a read before a write fails");
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_READ, 2, -9);
    CHECK_STATUS(fx_deliver_frame(&xfer, 1, 0, NULL), CHUNKPROV_STATUS_ABORTED);
    CHECK(contains(fx_sim.log.last_error, "-9"));

    test_context("a later write of the frame fails");
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_WRITE, 3, -5);
    CHECK_STATUS(fx_deliver_frame(&xfer, 2, 7, NULL), CHUNKPROV_STATUS_ABORTED);
    check_progress(&fx_r, 1, 0, (uint16_t)xfer.plan.count);

    test_context("delivered again, the frames are taken");
    nor_sim_fail_nth(&fx_sim, 0, 0, 0);
    for (uint32_t i = 0; i < xfer.plan.count; i++) {
        CHECK_STATUS(fx_deliver_frame(&xfer, i, 0, NULL),
                     i + 1 < xfer.plan.count ? CHUNKPROV_STATUS_OK : CHUNKPROV_STATUS_COMPLETE);
    }
    fx_check_complete(b);
    CHECK_EQ(fx_sim.counts.violations, 0);

    test_context("credentials: a read fails");
    chunkprov_credentials creds;
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_READ, 1, -11);
    CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &creds),
                 CHUNKPROV_STATUS_FLASH_ERROR);
    CHECK(contains(fx_sim.log.last_error, "-11"));
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_READ, 3, -11);
    CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &creds),
                 CHUNKPROV_STATUS_FLASH_ERROR);
    nor_sim_fail_nth(&fx_sim, 0, 0, 0);
    fx_check_complete(b);
}

static void flash_error_while_verifying(void)
{
    /* A read of the final read-back fails: end gives FLASH_ERROR, which proves
     * nothing about the bundle, so every frame stays held; the next delivery
     * of any of its frames reads it back again and gives COMPLETE. */
    const fx_bundle *b = fx_sample(FX_KEY_CA);
    start(FX_KEY_CA, 1024, 4);
    fx_setup(4, 4096, 4096, true);
    uint16_t count = (uint16_t)xfer.plan.count;
    uint32_t last = count - 1u;
    CHECK(last >= 2);
    for (uint32_t i = 0; i < last; i++) {
        CHECK_STATUS(fx_deliver_frame(&xfer, i, 0, NULL), CHUNKPROV_STATUS_OK);
    }
    fx_frame(&xfer, last);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg, fx_msg_len),
                 CHUNKPROV_STATUS_OK);
    /* The payload is in flash: end's first read is the read-back. */
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_READ, 1, -42);
    uint16_t index = 0xABCD;
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, &index),
                 CHUNKPROV_STATUS_FLASH_ERROR);
    CHECK_EQ(index, last);
    CHECK_EQ(fx_sim.counts.injected, 1);
    CHECK(contains(fx_sim.log.last_error, "-42"));
    check_progress(&fx_r, 4, count, count);
    size_t missing = 99;
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, NULL, 0, &missing), CHUNKPROV_STATUS_OK);
    CHECK_EQ(missing, 0);
    chunkprov_credentials creds;
    CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &creds),
                 CHUNKPROV_STATUS_NOT_COMPLETE);

    test_context("delivered again, the read-back fails again (a later read)");
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_READ, 2, -43);
    index = 0xABCD;
    CHECK_STATUS(fx_deliver_frame(&xfer, 1, 0, &index), CHUNKPROV_STATUS_FLASH_ERROR);
    CHECK_EQ(index, 1);
    CHECK_EQ(fx_sim.counts.injected, 2);
    CHECK(contains(fx_sim.log.last_error, "-43"));
    check_progress(&fx_r, 4, count, count);
    CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &creds),
                 CHUNKPROV_STATUS_NOT_COMPLETE);

    test_context("delivered again, the read-back works: COMPLETE");
    uint32_t writes = fx_sim.counts.writes, erases = fx_sim.counts.erases;
    uint32_t info = fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO];
    index = 0xABCD;
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 5, &index), CHUNKPROV_STATUS_COMPLETE);
    CHECK_EQ(index, 0);
    CHECK(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO] > info); /* "bundle complete" */
    CHECK_EQ(fx_sim.counts.writes, writes); /* verified, not written again */
    CHECK_EQ(fx_sim.counts.erases, erases);
    fx_check_complete(b);
    fx_check_clean_work(b->len);

    test_context("after COMPLETE, duplicates again");
    CHECK_STATUS(fx_deliver_frame(&xfer, last, 0, &index), CHUNKPROV_STATUS_DUPLICATE);
    CHECK_EQ(index, last);
    fx_check_complete(b);
}

static void geometry_error_in_feed_abandons_the_frame(void)
{
    /* A platform failure in feed loses that call's bytes: the frame is
     * abandoned (FLASH_ERROR now, the rest of its bytes ignored, ABORTED from
     * end), and delivered again it is taken as if nothing had happened. */
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    start(FX_CERT_CA, 256, 1);
    fx_setup(4, 4096, 4096, true);
    uint16_t count = (uint16_t)xfer.plan.count;
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, NULL), CHUNKPROV_STATUS_OK);
    fx_frame(&xfer, 1);
    /* The header and 20 payload bytes, then a piece whose geometry call fails. */
    size_t first = fx_msg_len - xfer.plan.chunk + 20;
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg, first),
                 CHUNKPROV_STATUS_OK);
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_GEOMETRY, 1, -6);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg + first, 64),
                 CHUNKPROV_STATUS_FLASH_ERROR);
    CHECK(contains(fx_sim.log.last_error, "-6"));
    nor_counts before = fx_sim.counts;
    chunkprov_status st = chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg + first + 64,
                                                     fx_msg_len - first - 64);
    CHECK(st == CHUNKPROV_STATUS_OK || st == CHUNKPROV_STATUS_FLASH_ERROR);
    /* The rest was ignored: nothing read, written or erased. */
    CHECK_EQ(fx_sim.counts.reads, before.reads);
    CHECK_EQ(fx_sim.counts.writes, before.writes);
    CHECK_EQ(fx_sim.counts.erases, before.erases);
    uint16_t index = 0xABCD;
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, &index),
                 CHUNKPROV_STATUS_ABORTED);
    CHECK_EQ(index, 1);
    check_progress(&fx_r, 1, 1, count);

    test_context("delivered again, it is taken");
    index = 0xABCD;
    CHECK_STATUS(fx_deliver_frame(&xfer, 1, 0, &index), CHUNKPROV_STATUS_OK);
    CHECK_EQ(index, 1);
    size_t missing = 0;
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, NULL, 0, &missing), CHUNKPROV_STATUS_OK);
    CHECK_EQ(missing, count - 2u);

    test_context("the geometry call of a message's first feed fails");
    fx_frame(&xfer, 2);
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_GEOMETRY, 1, -6);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg, 10),
                 CHUNKPROV_STATUS_FLASH_ERROR);
    before = fx_sim.counts;
    st = chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg + 10, fx_msg_len - 10);
    CHECK(st == CHUNKPROV_STATUS_OK || st == CHUNKPROV_STATUS_FLASH_ERROR);
    CHECK_EQ(fx_sim.counts.reads + fx_sim.counts.writes + fx_sim.counts.erases,
             before.reads + before.writes + before.erases);
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, NULL), CHUNKPROV_STATUS_ABORTED);
    check_progress(&fx_r, 1, 2, count);

    test_context("the rest of the transfer");
    for (uint32_t i = 2; i < count; i++) {
        CHECK_STATUS(fx_deliver_frame(&xfer, i, 0, NULL),
                     i + 1u < count ? CHUNKPROV_STATUS_OK : CHUNKPROV_STATUS_COMPLETE);
    }
    fx_check_complete(b);
    fx_check_clean_work(b->len); /* nothing out of place, nothing written twice */
}

static void null_data_abandons_the_frame(void)
{
    /* feed with data NULL and len > 0: NULL_ARGUMENT, and those bytes are lost
     * to the frame as surely as after a platform failure: it is abandoned. */
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    start(FX_CERT_CA, 512, 3);
    fx_setup(4, 4096, 4096, false);
    uint16_t count = (uint16_t)xfer.plan.count;
    fx_frame(&xfer, 0);
    size_t first = fx_msg_len - xfer.plan.chunk + 20;
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg, first),
                 CHUNKPROV_STATUS_OK);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, NULL, 16),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    nor_counts before = fx_sim.counts;
    (void)chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg + first, fx_msg_len - first);
    CHECK_EQ(fx_sim.counts.writes, before.writes);
    CHECK_EQ(fx_sim.counts.erases, before.erases);
    uint16_t index = 0xABCD;
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, &index),
                 CHUNKPROV_STATUS_ABORTED);
    CHECK_EQ(index, 0);
    check_progress(&fx_r, 3, 0, count);

    test_context("NULL with len 0 is no bytes: the frame goes on");
    fx_frame(&xfer, 0);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg, first),
                 CHUNKPROV_STATUS_OK);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, NULL, 0), CHUNKPROV_STATUS_OK);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg + first,
                                            fx_msg_len - first),
                 CHUNKPROV_STATUS_OK);
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, &index), CHUNKPROV_STATUS_OK);
    CHECK_EQ(index, 0);
    for (uint32_t i = 1; i < count; i++) {
        CHECK_STATUS(fx_deliver_frame(&xfer, i, 0, NULL),
                     i + 1u < count ? CHUNKPROV_STATUS_OK : CHUNKPROV_STATUS_COMPLETE);
    }
    fx_check_complete(b);
    fx_check_clean_work(b->len);
}

static void geometry_error_in_end_ends_the_message(void)
{
    /* end: a platform failure is reported (FLASH_ERROR) but the message is
     * over all the same: its frame is not held, and the next feed starts a
     * new frame (not appended to the old one). */
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    start(FX_CERT_CA, 256, 1);
    fx_setup(4, 4096, 4096, true);
    uint16_t count = (uint16_t)xfer.plan.count;

    test_context("a whole frame, end's geometry call fails");
    fx_frame(&xfer, 0);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg, fx_msg_len),
                 CHUNKPROV_STATUS_OK);
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_GEOMETRY, 1, -6);
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, NULL),
                 CHUNKPROV_STATUS_FLASH_ERROR);
    CHECK(contains(fx_sim.log.last_error, "-6"));
    check_progress(&fx_r, 1, 0, count);
    uint16_t index = 0xABCD;
    CHECK_STATUS(fx_deliver_frame(&xfer, 1, 0, &index), CHUNKPROV_STATUS_OK);
    CHECK_EQ(index, 1);

    test_context("half a frame, end's geometry call fails");
    fx_frame(&xfer, 2);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg, fx_msg_len / 2),
                 CHUNKPROV_STATUS_OK);
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_GEOMETRY, 1, -6);
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, NULL),
                 CHUNKPROV_STATUS_FLASH_ERROR);
    index = 0xABCD;
    CHECK_STATUS(fx_deliver_frame(&xfer, 3, 0, &index), CHUNKPROV_STATUS_OK);
    CHECK_EQ(index, 3);
    check_progress(&fx_r, 1, 2, count);

    test_context("the frames not held are taken when delivered again");
    static uint16_t out[FRAMES_MAX_COUNT];
    size_t missing = 0;
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, out, FRAMES_MAX_COUNT, &missing),
                 CHUNKPROV_STATUS_OK);
    CHECK_EQ(missing, count - 2u);
    CHECK(out[0] == 0 && out[1] == 2);
    for (size_t k = 0; k < missing; k++) {
        CHECK_STATUS(fx_deliver_frame(&xfer, out[k], 0, NULL),
                     k + 1 < missing ? CHUNKPROV_STATUS_OK : CHUNKPROV_STATUS_COMPLETE);
    }
    fx_check_complete(b);
    fx_check_clean_work(b->len);
}

static void flash_error_while_repairing(void)
{
    /* Stale bytes, and the erase that would clear them fails. */
    start(FX_CERT_CA, 192, 2);
    fx_setup(4, 1024, 4096, true);
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, NULL), CHUNKPROV_STATUS_OK);
    static const uint8_t stale[4] = {0, 0, 0, 0};
    CHECK_EQ(nor_sim_program(&fx_sim, fx_slot_offset + 3 * xfer.plan.chunk, stale, 4), 0);
    nor_sim_fail_nth(&fx_sim, NOR_SIM_OP_ERASE, 1, -5);
    CHECK_STATUS(fx_deliver_frame(&xfer, 3, 0, NULL), CHUNKPROV_STATUS_ABORTED);
    /* Next time the erase works: FLASH_MISMATCH, then the frame is taken. */
    CHECK_STATUS(fx_deliver_frame(&xfer, 3, 0, NULL), CHUNKPROV_STATUS_FLASH_MISMATCH);
    CHECK_STATUS(fx_deliver_frame(&xfer, 3, 0, NULL), CHUNKPROV_STATUS_OK);
    CHECK_EQ(fx_sim.counts.violations, 0);
}

static void log_lines(void)
{
    start(FX_KEY_CA, 1024, 5);
    fx_setup(4, 4096, 4096, false);
    /* init logs through the platform it is given. */
    static chunkprov_reassembler r;
    chunkprov_platform p = nor_sim_platform(&fx_sim, true);
    CHECK_STATUS(chunkprov_reassembler_init(&r, &p, fx_slot_offset, fx_slot_size, fx_nonce),
                 CHUNKPROV_STATUS_OK);
    CHECK(fx_sim.log.total >= 1);
    CHECK(fx_sim.log.last[0] != '\0');
    /* Frames, a rejection, completion: every level but ERROR. */
    for (uint32_t i = 0; i < xfer.plan.count; i++) {
        fx_frame(&xfer, i);
        CHECK_STATUS(chunkprov_reassembler_feed(&r, &p, fx_msg, fx_msg_len), CHUNKPROV_STATUS_OK);
        CHECK_STATUS(chunkprov_reassembler_end(&r, &p, NULL),
                     i + 1 < xfer.plan.count ? CHUNKPROV_STATUS_OK : CHUNKPROV_STATUS_COMPLETE);
        if (i == 0) {
            CHECK(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_DEBUG] >= 1); /* "every frame" */
            fx_frame(&xfer, 0);
            fx_msg[fx_msg_len - 1] ^= 1;
            CHECK_STATUS(chunkprov_reassembler_feed(&r, &p, fx_msg, fx_msg_len - 5),
                         CHUNKPROV_STATUS_OK);
            CHECK_STATUS(chunkprov_reassembler_end(&r, &p, NULL),
                         CHUNKPROV_STATUS_FRAME_TRUNCATED);
            CHECK_EQ(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_WARN], 1);
        }
    }
    CHECK(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO] >= 1);
    CHECK_EQ(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_ERROR], 0);
    CHECK_EQ(fx_sim.log.bad, 0);
    /* No log callback: silence, same results. */
    uint32_t total = fx_sim.log.total;
    p.log = NULL;
    fx_frame(&xfer, 1);
    CHECK_STATUS(chunkprov_reassembler_feed(&r, &p, fx_msg, fx_msg_len), CHUNKPROV_STATUS_OK);
    CHECK_STATUS(chunkprov_reassembler_end(&r, &p, NULL), CHUNKPROV_STATUS_DUPLICATE);
    CHECK_EQ(fx_sim.log.total, total);
}

static void log_transfer_started(void)
{
    /* CHUNKPROV_LOG_LEVEL_INFO: "Milestones: a transfer started, the bundle is
     * complete." One INFO line when the first frame of a new transfer is fed:
     * "transfer <id> started: <n> frames, <len> bytes". */
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    start(FX_CERT_CA, 1024, 7);
    fx_setup(4, 4096, 4096, true);
    char want[96];
    snprintf(want, sizeof want, "transfer 7 started: %lu frames, %lu bytes",
             (unsigned long)xfer.plan.count, (unsigned long)b->len);

    test_context("a foreign frame starts nothing");
    frames_header h;
    const uint8_t *payload;
    uint32_t len;
    frames_transfer_header(&xfer, 0, &h, &payload, &len);
    h.nonce[3] ^= 1;
    static uint8_t msg[FX_MSG_MAX];
    size_t n = frames_encode(&h, payload, len, msg, sizeof msg);
    CHECK_STATUS(fx_deliver(msg, n, 0, NULL), CHUNKPROV_STATUS_FOREIGN_NONCE);
    CHECK_EQ(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO], 0);

    test_context("the first frame, fed in pieces");
    fx_frame(&xfer, 1);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg, 30),
                 CHUNKPROV_STATUS_OK);
    CHECK_EQ(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO], 0); /* header not whole yet */
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg + 30, fx_msg_len - 30),
                 CHUNKPROV_STATUS_OK);
    CHECK_EQ(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO], 1);
    test_context("the line: \"%s\"", fx_sim.log.last);
    CHECK(strcmp(fx_sim.log.last, want) == 0);
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, NULL), CHUNKPROV_STATUS_OK);

    test_context("the other frames of the transfer: only \"bundle complete\"");
    CHECK_STATUS(fx_deliver_frame(&xfer, 1, 0, NULL), CHUNKPROV_STATUS_DUPLICATE);
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, NULL), CHUNKPROV_STATUS_OK);
    CHECK_EQ(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO], 1);
    CHECK_STATUS(fx_deliver_frame(&xfer, 2, 0, NULL), CHUNKPROV_STATUS_COMPLETE);
    CHECK_EQ(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO], 2);
    CHECK(strstr(fx_sim.log.last, "started") == NULL);

    test_context("a newer transfer");
    const fx_bundle *k = fx_sample(FX_KEY_CA);
    frames_transfer next;
    CHECK(frames_transfer_init(&next, k->bytes, k->len, 512, fx_nonce, 8));
    snprintf(want, sizeof want, "transfer 8 started: %lu frames, %lu bytes",
             (unsigned long)next.plan.count, (unsigned long)k->len);
    fx_frame(&next, 3);
    CHECK_STATUS(chunkprov_reassembler_feed(&fx_r, &fx_platform, fx_msg, fx_msg_len),
                 CHUNKPROV_STATUS_OK);
    CHECK_EQ(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO], 3);
    CHECK(strcmp(fx_sim.log.last, want) == 0);
    CHECK_STATUS(chunkprov_reassembler_end(&fx_r, &fx_platform, NULL), CHUNKPROV_STATUS_OK);
    CHECK_EQ(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO], 3);
    CHECK_EQ(fx_sim.log.bad, 0);
}

static void reinit_starts_afresh(void)
{
    start(FX_CERT_CA, 256, 8);
    fx_setup(4, 4096, 4096, false);
    for (uint32_t i = 0; i < 3; i++) {
        CHECK_STATUS(fx_deliver_frame(&xfer, i, 0, NULL), CHUNKPROV_STATUS_OK);
    }
    check_progress(&fx_r, 8, 3, (uint16_t)xfer.plan.count);
    CHECK_STATUS(chunkprov_reassembler_init(&fx_r, &fx_platform, fx_slot_offset, fx_slot_size,
                                            fx_nonce),
                 CHUNKPROV_STATUS_OK);
    check_progress(&fx_r, 0, 0, 0);
    /* With another nonce, the old request's frames are foreign. */
    static const uint8_t other[CHUNKPROV_NONCE_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK_STATUS(chunkprov_reassembler_init(&fx_r, &fx_platform, fx_slot_offset, fx_slot_size,
                                            other),
                 CHUNKPROV_STATUS_OK);
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, NULL), CHUNKPROV_STATUS_FOREIGN_NONCE);
}

static void two_reassemblers_share_a_flash(void)
{
    /* Slots A and B in one flash, two requests, frames interleaved. */
    static chunkprov_reassembler a, b;
    static const uint8_t nonce_b[CHUNKPROV_NONCE_LEN] = {9, 9, 9, 9, 9, 9, 9, 9};
    const fx_bundle *ba = fx_sample(FX_CERT_CA);
    const fx_bundle *bb = fx_sample(FX_KEY_CA);
    fx_setup(4, 1024, 8192, false); /* slot A: 4 KiB at 1 KiB, slot B: 4 KiB at 5 KiB */
    chunkprov_platform p = fx_platform;
    CHECK_STATUS(chunkprov_reassembler_init(&a, &p, 1024, 4096, fx_nonce), CHUNKPROV_STATUS_OK);
    CHECK_STATUS(chunkprov_reassembler_init(&b, &p, 5120, 4096, nonce_b), CHUNKPROV_STATUS_OK);
    frames_transfer ta, tb;
    CHECK(frames_transfer_init(&ta, ba->bytes, ba->len, 256, fx_nonce, 1));
    CHECK(frames_transfer_init(&tb, bb->bytes, bb->len, 320, nonce_b, 1));
    uint32_t n = ta.plan.count > tb.plan.count ? ta.plan.count : tb.plan.count;
    chunkprov_status sa = CHUNKPROV_STATUS_OK, sb = CHUNKPROV_STATUS_OK;
    for (uint32_t i = 0; i < n; i++) {
        if (i < ta.plan.count) {
            fx_frame(&ta, i);
            CHECK_STATUS(chunkprov_reassembler_feed(&a, &p, fx_msg, fx_msg_len),
                         CHUNKPROV_STATUS_OK);
            /* B sees A's frame: another request's nonce. */
            CHECK_STATUS(chunkprov_reassembler_feed(&b, &p, fx_msg, fx_msg_len),
                         CHUNKPROV_STATUS_FOREIGN_NONCE);
            CHECK_STATUS(chunkprov_reassembler_end(&b, &p, NULL), CHUNKPROV_STATUS_FOREIGN_NONCE);
            sa = chunkprov_reassembler_end(&a, &p, NULL);
        }
        if (i < tb.plan.count) {
            fx_frame(&tb, i);
            CHECK_STATUS(chunkprov_reassembler_feed(&b, &p, fx_msg, fx_msg_len),
                         CHUNKPROV_STATUS_OK);
            sb = chunkprov_reassembler_end(&b, &p, NULL);
        }
    }
    CHECK_STATUS(sa, CHUNKPROV_STATUS_COMPLETE);
    CHECK_STATUS(sb, CHUNKPROV_STATUS_COMPLETE);
    chunkprov_credentials ca, cb;
    CHECK_STATUS(chunkprov_reassembler_credentials(&a, &p, &ca), CHUNKPROV_STATUS_OK);
    CHECK_STATUS(chunkprov_reassembler_credentials(&b, &p, &cb), CHUNKPROV_STATUS_OK);
    CHECK_EQ(ca.certificate.offset, 1024 + ba->layout.certificate.offset);
    CHECK_EQ(cb.private_key.offset, 5120 + bb->layout.private_key.offset);
    CHECK_EQ(ca.private_key.len, 0);
    CHECK(memcmp(fx_sim.mem + 1024, ba->bytes, ba->len) == 0);
    CHECK(memcmp(fx_sim.mem + 5120, bb->bytes, bb->len) == 0);
    CHECK_EQ(fx_sim.counts.violations, 0);
}

int main(void)
{
    static const test_case cases[] = {
        TEST_CASE(null_arguments),
        TEST_CASE(zeroed_state_is_not_initialised),
        TEST_CASE(invalid_geometry),
        TEST_CASE(invalid_slot),
        TEST_CASE(geometry_callback_error),
        TEST_CASE(flash_errors_abort_the_frame),
        TEST_CASE(flash_error_while_verifying),
        TEST_CASE(flash_error_while_repairing),
        TEST_CASE(geometry_error_in_feed_abandons_the_frame),
        TEST_CASE(null_data_abandons_the_frame),
        TEST_CASE(geometry_error_in_end_ends_the_message),
        TEST_CASE(log_lines),
        TEST_CASE(log_transfer_started),
        TEST_CASE(reinit_starts_afresh),
        TEST_CASE(two_reassemblers_share_a_flash),
    };
    return test_run("test_api", cases, TEST_COUNT(cases));
}
