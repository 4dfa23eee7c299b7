/*
 * Transfers that succeed: the happy path (CSR mode with server CA, key mode),
 * every piece size, random splits, out-of-order delivery with duplicates,
 * chunkprov_reassembler_missing, every supported flash geometry, and the
 * flash work a clean transfer costs.
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

static void check_progress(uint32_t tid, uint16_t held, uint16_t count)
{
    uint32_t t = 0xDEADBEEFu;
    uint16_t h = 0xEEEE, c = 0xEEEE;
    CHECK_STATUS(chunkprov_reassembler_progress(&fx_r, &t, &h, &c), CHUNKPROV_STATUS_OK);
    CHECK_EQ(t, tid);
    CHECK_EQ(h, held);
    CHECK_EQ(c, count);
}

static void happy_path_cert_and_ca(void)
{
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    start(FX_CERT_CA, 192, 7);
    CHECK(xfer.plan.count >= 12);
    fx_setup(4, 4096, 4 * 4096, true);
    check_progress(0, 0, 0);
    size_t missing = 99;
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, NULL, 0, &missing), CHUNKPROV_STATUS_OK);
    CHECK_EQ(missing, 0);
    chunkprov_credentials c;
    CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &c),
                 CHUNKPROV_STATUS_NOT_COMPLETE);
    for (uint32_t i = 0; i < xfer.plan.count; i++) {
        test_context("frame %lu of %lu", (unsigned long)i, (unsigned long)xfer.plan.count);
        uint16_t index = 0xFFFF;
        chunkprov_status st = fx_deliver_frame(&xfer, i, 0, &index);
        if (i + 1 < xfer.plan.count) {
            CHECK_STATUS(st, CHUNKPROV_STATUS_OK);
            CHECK_EQ(index, i);
            check_progress(7, (uint16_t)(i + 1), (uint16_t)xfer.plan.count);
            CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &c),
                         CHUNKPROV_STATUS_NOT_COMPLETE);
        } else {
            CHECK_STATUS(st, CHUNKPROV_STATUS_COMPLETE);
        }
    }
    test_context("after COMPLETE");
    fx_check_complete(b);
    fx_check_clean_work(b->len);
    CHECK(fx_sim.log.lines[CHUNKPROV_LOG_LEVEL_INFO] >= 1); /* "bundle complete" */
    CHECK_EQ(fx_sim.log.bad, 0);
    /* Duplicates after completion change nothing and write nothing. */
    nor_sim_reset_counts(&fx_sim);
    uint16_t index = 0xFFFF;
    CHECK_STATUS(fx_deliver_frame(&xfer, 3, 7, &index), CHUNKPROV_STATUS_DUPLICATE);
    CHECK_EQ(index, 3);
    CHECK_STATUS(fx_deliver_frame(&xfer, xfer.plan.count - 1, 0, &index),
                 CHUNKPROV_STATUS_DUPLICATE);
    CHECK_EQ(index, xfer.plan.count - 1);
    CHECK_EQ(fx_sim.counts.writes + fx_sim.counts.erases, 0);
    fx_check_complete(b);
}

static void happy_path_key_mode(void)
{
    const fx_bundle *b = fx_sample(FX_KEY_CA);
    start(FX_KEY_CA, 1024, 1);
    CHECK(xfer.plan.count >= 3);
    fx_setup(16, 4096, 2 * 4096, false);
    fx_transfer_in_order(&xfer, 100);
    fx_check_complete(b);
    fx_check_clean_work(b->len);
}

static void key_mode_without_server_ca(void)
{
    const fx_bundle *b = fx_sample(FX_KEY_ONLY);
    start(FX_KEY_ONLY, 512, 0xFFFFFFFFu); /* the largest transfer id */
    fx_setup(1, 1024, fx_slot_for(b->len, 1024), true);
    fx_transfer_in_order(&xfer, 0);
    fx_check_complete(b);
    fx_check_clean_work(b->len);
    check_progress(0xFFFFFFFFu, (uint16_t)xfer.plan.count, (uint16_t)xfer.plan.count);
}

static void single_frame_transfer(void)
{
    const fx_bundle *b = fx_sample(FX_KEY_CA);
    start(FX_KEY_CA, 8192, 3);
    CHECK_EQ(xfer.plan.count, 1);
    fx_setup(32, 8192, 8192, false);
    uint16_t index = 0xFFFF;
    CHECK_STATUS(fx_deliver_frame(&xfer, 0, 0, &index), CHUNKPROV_STATUS_COMPLETE);
    fx_check_complete(b);
    fx_check_clean_work(b->len);
}

static void every_piece_size_gives_the_same_result(void)
{
    const fx_bundle *b = fx_sample(FX_KEY_CA);
    start(FX_KEY_CA, 448, 5);
    size_t longest = 0;
    for (uint32_t i = 0; i < xfer.plan.count; i++) {
        fx_frame(&xfer, i);
        if (fx_msg_len > longest) {
            longest = fx_msg_len;
        }
    }
    static chunkprov_credentials reference;
    static nor_counts reference_counts;
    for (size_t piece = 1; piece <= longest + 1; piece++) {
        test_context("pieces of %lu bytes (frames up to %lu)", (unsigned long)piece,
                     (unsigned long)longest);
        fx_setup(4, 4096, 2 * 4096, false);
        fx_transfer_in_order(&xfer, piece);
        fx_check_complete(b);
        fx_check_clean_work(b->len);
        chunkprov_credentials c;
        CHECK_STATUS(chunkprov_reassembler_credentials(&fx_r, &fx_platform, &c),
                     CHUNKPROV_STATUS_OK);
        if (piece == 1) {
            reference = c;
            reference_counts = fx_sim.counts;
        }
        CHECK(memcmp(&c, &reference, sizeof c) == 0);
        CHECK_EQ(fx_sim.counts.units, reference_counts.units);
        CHECK_EQ(fx_sim.counts.pages, reference_counts.pages);
    }
}

static void random_splits(void)
{
    for (uint32_t seed = 1; seed <= 40; seed++) {
        enum fx_kind kind = (enum fx_kind)(seed % FX_KIND_COUNT);
        const fx_bundle *b = fx_sample(kind);
        uint32_t max_chunk = 192 + 32 * (seed % 20);
        test_context("seed %lu, max_chunk %lu", (unsigned long)seed, (unsigned long)max_chunk);
        start(kind, max_chunk, seed);
        fx_seed(seed);
        fx_setup(seed % 2 ? 4 : 32, 2048, fx_slot_for(b->len, 2048), false);
        size_t max_piece = 1 + fx_rand() % 700;
        for (uint32_t i = 0; i < xfer.plan.count; i++) {
            fx_frame(&xfer, i);
            chunkprov_status st = fx_deliver_random(fx_msg, fx_msg_len, max_piece, NULL);
            CHECK_STATUS(st, i + 1 < xfer.plan.count ? CHUNKPROV_STATUS_OK
                                                     : CHUNKPROV_STATUS_COMPLETE);
        }
        fx_check_complete(b);
        fx_check_clean_work(b->len);
    }
}

/* Delivers t's frames in `order`, checking OK/DUPLICATE/COMPLETE and the
 * index reported for each. */
static void deliver_in_order_given(const uint16_t *order, uint32_t n, size_t piece)
{
    static bool held[FRAMES_MAX_COUNT];
    memset(held, 0, sizeof held);
    uint32_t held_count = 0;
    bool complete = false;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = order[k];
        uint16_t index = 0xFFFF;
        chunkprov_status st = piece == 0 ? (fx_frame(&xfer, i),
                                            fx_deliver_random(fx_msg, fx_msg_len, 300, &index))
                                         : fx_deliver_frame(&xfer, i, piece, &index);
        if (held[i]) {
            CHECK_STATUS(st, CHUNKPROV_STATUS_DUPLICATE);
            CHECK_EQ(index, i);
        } else if (held_count + 1 < xfer.plan.count) {
            CHECK_STATUS(st, CHUNKPROV_STATUS_OK);
            CHECK_EQ(index, i);
            held[i] = true;
            held_count++;
        } else {
            CHECK_STATUS(st, CHUNKPROV_STATUS_COMPLETE);
            CHECK(!complete);
            complete = true;
            held[i] = true;
            held_count++;
        }
    }
    CHECK(complete);
}

static void out_of_order_with_duplicates(void)
{
    static uint16_t order[2 * FRAMES_MAX_COUNT];
    for (uint32_t seed = 100; seed < 112; seed++) {
        enum fx_kind kind = (enum fx_kind)(seed % FX_KIND_COUNT);
        const fx_bundle *b = fx_sample(kind);
        test_context("seed %lu", (unsigned long)seed);
        start(kind, 160 + 64 * (seed % 5), seed);
        fx_seed(seed);
        uint32_t n = fx_shuffled_with_duplicates(xfer.plan.count, order);
        fx_setup(4, 1024, fx_slot_for(b->len, 1024) + 1024, false);
        deliver_in_order_given(order, n, seed % 3 == 0 ? 0 : 1 + seed % 97);
        fx_check_complete(b);
        /* Duplicates cost nothing: each page erased once, each unit once. */
        fx_check_clean_work(b->len);
    }
}

static void reverse_order(void)
{
    static uint16_t order[FRAMES_MAX_COUNT];
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    start(FX_CERT_CA, 256, 11);
    for (uint32_t k = 0; k < xfer.plan.count; k++) {
        order[k] = (uint16_t)(xfer.plan.count - 1 - k);
    }
    fx_setup(4, 4096, 4096, false);
    deliver_in_order_given(order, xfer.plan.count, 64);
    fx_check_complete(b);
    fx_check_clean_work(b->len);
}

static void missing_lists_frames_not_held(void)
{
    start(FX_CERT_CA, 192, 9);
    uint32_t n = xfer.plan.count;
    CHECK(n >= 10);
    fx_setup(4, 4096, 4096, false);
    uint16_t out[FRAMES_MAX_COUNT + 4];
    size_t missing = 12345;
    /* Before the first valid frame the count is unknown: 0. */
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, out, 4, &missing), CHUNKPROV_STATUS_OK);
    CHECK_EQ(missing, 0);
    static const uint16_t held[] = {5, 0, 2, 9};
    for (size_t k = 0; k < sizeof held / sizeof held[0]; k++) {
        CHECK_STATUS(fx_deliver_frame(&xfer, held[k], 0, NULL), CHUNKPROV_STATUS_OK);
    }
    /* All of them, lowest first. */
    memset(out, 0xEE, sizeof out);
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, out, FRAMES_MAX_COUNT, &missing),
                 CHUNKPROV_STATUS_OK);
    CHECK_EQ(missing, n - 4);
    uint16_t want[FRAMES_MAX_COUNT];
    uint32_t w = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i != 0 && i != 2 && i != 5 && i != 9) {
            want[w++] = (uint16_t)i;
        }
    }
    CHECK(memcmp(out, want, w * sizeof want[0]) == 0);
    CHECK_EQ(out[w], 0xEEEE);
    /* Fewer places than missing frames: the lowest ones, and the full total. */
    memset(out, 0xEE, sizeof out);
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, out, 3, &missing), CHUNKPROV_STATUS_OK);
    CHECK_EQ(missing, n - 4);
    CHECK_EQ(out[0], 1);
    CHECK_EQ(out[1], 3);
    CHECK_EQ(out[2], 4);
    CHECK_EQ(out[3], 0xEEEE);
    /* Only the total. */
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, NULL, 0, &missing), CHUNKPROV_STATUS_OK);
    CHECK_EQ(missing, n - 4);
    /* Asking for exactly the missing ones completes the bundle. */
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, out, FRAMES_MAX_COUNT, &missing),
                 CHUNKPROV_STATUS_OK);
    for (size_t k = 0; k < missing; k++) {
        CHECK_STATUS(fx_deliver_frame(&xfer, out[k], 0, NULL),
                     k + 1 < missing ? CHUNKPROV_STATUS_OK : CHUNKPROV_STATUS_COMPLETE);
    }
    CHECK_STATUS(chunkprov_reassembler_missing(&fx_r, out, FRAMES_MAX_COUNT, &missing),
                 CHUNKPROV_STATUS_OK);
    CHECK_EQ(missing, 0);
    fx_check_complete(fx_sample(FX_CERT_CA));
}

static void every_geometry(void)
{
    static const uint32_t write_sizes[] = {1, 4, 16, 32};
    static uint16_t order[2 * FRAMES_MAX_COUNT];
    static const uint32_t max_chunks[] = {192, 256, 480, 1024};
    uint32_t run = 0;
    for (size_t w = 0; w < sizeof write_sizes / sizeof write_sizes[0]; w++) {
        for (uint32_t es = 256; es <= 65536; es *= 2, run++) {
            uint32_t ws = write_sizes[w];
            enum fx_kind kind = (enum fx_kind)(run % FX_KIND_COUNT);
            const fx_bundle *b = fx_sample(kind);
            uint32_t max_chunk = max_chunks[run % 4];
            test_context("write unit %lu, page %lu, bundle %lu bytes, max_chunk %lu",
                         (unsigned long)ws, (unsigned long)es, (unsigned long)b->len,
                         (unsigned long)max_chunk);
            start(kind, max_chunk, run + 1);
            fx_seed(run + 1);
            uint32_t n = fx_shuffled_with_duplicates(xfer.plan.count, order);
            /* One spare page in the slot: only the pages the bundle needs are erased. */
            fx_setup(ws, es, fx_slot_for(b->len, es) + es, true);
            deliver_in_order_given(order, n, 1 + fx_rand() % 200);
            fx_check_complete(b);
            fx_check_clean_work(b->len);
            CHECK_EQ(fx_sim.log.bad, 0);
            /* The pages around the slot's bundle pages were never touched. */
            for (uint32_t o = 0; o < fx_slot_offset; o++) {
                CHECK_EQ(fx_sim.mem[o], 0xFF);
            }
        }
    }
    CHECK_EQ(run, 36);
}

static void state_can_be_copied_and_platform_can_move(void)
{
    /* "It holds no pointers, so it may be copied while no call is running";
     * "the library keeps no pointer to this struct [platform]". */
    static chunkprov_reassembler copy;
    const fx_bundle *b = fx_sample(FX_KEY_CA);
    start(FX_KEY_CA, 256, 21);
    fx_setup(4, 4096, 4096, false);
    uint32_t half = xfer.plan.count / 2;
    for (uint32_t i = 0; i < half; i++) {
        CHECK_STATUS(fx_deliver_frame(&xfer, i, 50, NULL), CHUNKPROV_STATUS_OK);
    }
    memcpy(&copy, &fx_r, sizeof copy);
    memset(&fx_r, 0, sizeof fx_r);
    CHECK_STATUS(chunkprov_reassembler_progress(&fx_r, NULL, NULL, NULL),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    for (uint32_t i = half; i < xfer.plan.count; i++) {
        fx_frame(&xfer, i);
        for (size_t at = 0; at < fx_msg_len; at += 100) {
            chunkprov_platform p = nor_sim_platform(&fx_sim, false); /* a new one each call */
            size_t n = fx_msg_len - at < 100 ? fx_msg_len - at : 100;
            CHECK_STATUS(chunkprov_reassembler_feed(&copy, &p, fx_msg + at, n),
                         CHUNKPROV_STATUS_OK);
            memset(&p, 0, sizeof p);
        }
        chunkprov_platform p = nor_sim_platform(&fx_sim, false);
        uint16_t index = 0xFFFF;
        CHECK_STATUS(chunkprov_reassembler_end(&copy, &p, &index),
                     i + 1 < xfer.plan.count ? CHUNKPROV_STATUS_OK : CHUNKPROV_STATUS_COMPLETE);
    }
    memcpy(&fx_r, &copy, sizeof copy);
    fx_check_complete(b);
    fx_check_clean_work(b->len);
}

static void cut_short_then_redelivered_writes_only_the_rest(void)
{
    start(FX_KEY_CA, 480, 2);
    fx_setup(16, 4096, 4096, false);
    fx_frame(&xfer, 2);
    CHECK(fx_msg_len > 300);
    CHECK_STATUS(fx_deliver(fx_msg, 200, 64, NULL), CHUNKPROV_STATUS_FRAME_TRUNCATED);
    uint32_t units = fx_sim.counts.units;
    CHECK(units > 0);
    uint16_t index = 0xFFFF;
    CHECK_STATUS(fx_deliver(fx_msg, fx_msg_len, 64, &index), CHUNKPROV_STATUS_OK);
    CHECK_EQ(index, 2);
    CHECK_EQ(fx_sim.counts.units, xfer.plan.chunk / 16); /* only the rest was written */
    CHECK_EQ(fx_sim.counts.violations, 0);
    CHECK_EQ(fx_sim.counts.erases, 1);
}

int main(void)
{
    static const test_case cases[] = {
        TEST_CASE(happy_path_cert_and_ca),
        TEST_CASE(happy_path_key_mode),
        TEST_CASE(key_mode_without_server_ca),
        TEST_CASE(single_frame_transfer),
        TEST_CASE(every_piece_size_gives_the_same_result),
        TEST_CASE(random_splits),
        TEST_CASE(out_of_order_with_duplicates),
        TEST_CASE(reverse_order),
        TEST_CASE(missing_lists_frames_not_held),
        TEST_CASE(every_geometry),
        TEST_CASE(state_can_be_copied_and_platform_can_move),
        TEST_CASE(cut_short_then_redelivered_writes_only_the_rest),
    };
    return test_run("test_transfer", cases, TEST_COUNT(cases));
}
