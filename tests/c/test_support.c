/*
 * Self-tests of the test support code (the NOR simulator and the stand-in
 * encoder) against the spec's check values, and of the C ABI's plain
 * helpers: sizes, chunkprov_status_name, chunkprov_sha256.
 */
#include <stdio.h>
#include <string.h>

#include "chunkprov.h"
#include "fixture.h"
#include "frames.h"
#include "nor_sim.h"
#include "test.h"

static void crc32_check_values(void)
{
    const uint8_t *check = (const uint8_t *)"123456789";
    CHECK_EQ(crc32_of(check, 9), 0xCBF43926u);
    CHECK_EQ(crc32_of(NULL, 0), 0);
    CHECK_EQ(crc32_of((const uint8_t *)"abc", 3), 0x352441C2u);
    for (size_t cut = 0; cut <= 9; cut++) {
        CHECK_EQ(crc32_update(crc32_of(check, cut), check + cut, 9 - cut), 0xCBF43926u);
    }
}

static void cbor_heads_are_shortest(void)
{
    static const struct {
        uint64_t value;
        uint8_t bytes[9];
        size_t len;
    } v[] = {
        {0, {0x00}, 1},
        {23, {0x17}, 1},
        {24, {0x18, 24}, 2},
        {255, {0x18, 0xFF}, 2},
        {256, {0x19, 0x01, 0x00}, 3},
        {65535, {0x19, 0xFF, 0xFF}, 3},
        {65536, {0x1A, 0x00, 0x01, 0x00, 0x00}, 5},
        {0xFFFFFFFFu, {0x1A, 0xFF, 0xFF, 0xFF, 0xFF}, 5},
        {0x100000000ull, {0x1B, 0, 0, 0, 1, 0, 0, 0, 0}, 9},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t out[9];
        test_context("value %lu", (unsigned long)v[i].value);
        CHECK_EQ(cbor_head(CBOR_MAJOR_UINT, v[i].value, out), v[i].len);
        CHECK_EQ(cbor_head_len(v[i].value), v[i].len);
        CHECK(memcmp(out, v[i].bytes, v[i].len) == 0);
    }
    uint8_t out[9];
    CHECK_EQ(cbor_head(CBOR_MAJOR_BYTES, 8, out), 1);
    CHECK_EQ(out[0], 0x48);
    CHECK_EQ(cbor_head(CBOR_MAJOR_ARRAY, 8, out), 1);
    CHECK_EQ(out[0], 0x88);
    CHECK_EQ(cbor_head(CBOR_MAJOR_TEXT, 19, out), 1);
    CHECK_EQ(out[0], 0x73);
}

static void frame_bytes_match_the_spec(void)
{
    /* index 0 of 1, bundle "abc": every field spelled out by hand. */
    frames_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.nonce, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    h.transfer_id = 1000;
    h.index = 0;
    h.count = 1;
    h.bundle_len = 3;
    memset(h.sha256, 0xAB, 32);
    h.crc32 = crc32_of((const uint8_t *)"abc", 3);
    uint8_t out[128];
    size_t n = frames_encode(&h, (const uint8_t *)"abc", 3, out, sizeof out);
    static const uint8_t head[] = {0x88, 0x48, 1, 2, 3, 4, 5, 6, 7, 8, 0x19, 0x03, 0xE8,
                                   0x00, 0x01, 0x03, 0x58, 0x20};
    CHECK_EQ(n, sizeof head + 32 + 5 + 1 + 3);
    CHECK(memcmp(out, head, sizeof head) == 0);
    for (size_t i = 0; i < 32; i++) {
        CHECK_EQ(out[sizeof head + i], 0xAB);
    }
    static const uint8_t tail[] = {0x1A, 0x35, 0x24, 0x41, 0xC2, 0x43, 'a', 'b', 'c'};
    CHECK(memcmp(out + sizeof head + 32, tail, sizeof tail) == 0);
    /* Too small a buffer is refused. */
    CHECK_EQ(frames_encode(&h, (const uint8_t *)"abc", 3, out, n - 1), 0);
    /* The longest header is FRAMES_HEADER_MAX bytes. */
    h.transfer_id = 0xFFFFFFFFu;
    h.index = 0xFFFF;
    h.count = 0xFFFF;
    h.bundle_len = 0xFFFFFFFFu;
    h.crc32 = 0xFFFFFFFFu;
    static uint8_t big[FRAMES_MAX_BUNDLE + FRAMES_HEADER_MAX];
    static const uint8_t payload[FRAMES_MAX_BUNDLE];
    CHECK_EQ(frames_encode(&h, payload, FRAMES_MAX_BUNDLE, big, sizeof big),
             FRAMES_HEADER_MAX + FRAMES_MAX_BUNDLE);
}

static void chunking_rule(void)
{
    frames_plan p;
    CHECK(frames_plan_from_header(70, 3, &p));
    CHECK_EQ(p.chunk, 32);
    uint32_t off, len;
    frames_plan_frame(&p, 2, &off, &len);
    CHECK_EQ(off, 64);
    CHECK_EQ(len, 6);
    CHECK(!frames_plan_from_header(9, 4, &p)); /* 9 bytes cannot be 4 frames of 32 */
    CHECK(!frames_plan_from_header(0, 1, &p));
    CHECK(!frames_plan_from_header(10, 0, &p));
    CHECK(!frames_plan_from_header(FRAMES_MAX_BUNDLE + 1, 100, &p));
    CHECK(!frames_plan_from_header(FRAMES_MAX_BUNDLE, FRAMES_MAX_COUNT + 1, &p));
    CHECK(frames_plan_for_bundle(100, 40, &p)); /* max_chunk 40 -> 32 */
    CHECK_EQ(p.count, 4);
    CHECK_EQ(p.chunk, 32);
    /* Every plan covers its bundle with frames of at most max_chunk. */
    for (uint32_t L = 1; L <= 5000; L += 37) {
        for (uint32_t max = 32; max <= 1024; max += 96) {
            test_context("L %lu max_chunk %lu", (unsigned long)L, (unsigned long)max);
            if (!frames_plan_for_bundle(L, max, &p)) {
                CHECK((L + max / 32 * 32 - 1) / (max / 32 * 32) > FRAMES_MAX_COUNT);
                continue;
            }
            CHECK(p.chunk <= max && p.chunk % 32 == 0);
            uint32_t next = 0;
            for (uint32_t i = 0; i < p.count; i++) {
                frames_plan_frame(&p, i, &off, &len);
                CHECK_EQ(off, next);
                CHECK(len > 0 && len <= p.chunk);
                next += len;
            }
            CHECK_EQ(next, L);
        }
    }
}

static void bundle_encoding(void)
{
    const fx_bundle *b = fx_sample(FX_CERT_CA);
    CHECK(b->len >= 2500 && b->len <= 4096);
    CHECK_EQ(b->bytes[0], 0x85);
    CHECK_EQ(b->bytes[1], 0x60 + 19); /* text(19) "dev-352656100000000" */
    CHECK_EQ(b->layout.thing_name.offset, 2);
    CHECK_EQ(b->bytes[b->layout.certificate_id.offset - 2], 0x78); /* text, 1-byte length */
    CHECK_EQ(b->bytes[b->layout.certificate_id.offset - 1], 64);
    CHECK_EQ(b->bytes[b->layout.certificate.offset - 3], 0x59); /* bytes, 2-byte length */
    CHECK_EQ(b->layout.private_key.len, 0);
    /* The key is null: 0xF6 between the certificate and the CA's head. */
    CHECK_EQ(b->bytes[b->layout.certificate.offset + b->layout.certificate.len], CBOR_NULL);
    CHECK_EQ(b->bytes[b->layout.certificate.offset + b->layout.certificate.len - 1], 0);
    CHECK_EQ(b->layout.server_ca.offset + b->layout.server_ca.len, b->len);
    const fx_bundle *k = fx_sample(FX_KEY_CA);
    CHECK(k->len > b->len && k->len <= 4096);
    CHECK(k->layout.private_key.len > 200);
    /* Every PEM item: a shortest byte-string head right before its bytes. */
    const frames_span pems[] = {k->layout.certificate, k->layout.private_key,
                                k->layout.server_ca};
    for (size_t i = 0; i < 3; i++) {
        uint8_t head[9];
        size_t hl = cbor_head(CBOR_MAJOR_BYTES, pems[i].len, head);
        CHECK(memcmp(k->bytes + pems[i].offset - hl, head, hl) == 0);
        CHECK_EQ(k->bytes[pems[i].offset + pems[i].len - 1], 0);
    }
    const fx_bundle *ko = fx_sample(FX_KEY_ONLY);
    CHECK_EQ(ko->bytes[ko->len - 1], CBOR_NULL);
    CHECK_EQ(ko->layout.server_ca.len, 0);
    uint8_t small[100];
    frames_bundle f = {"t", "c", "-----BEGIN X-----\n", NULL, NULL};
    frames_layout l;
    size_t n = frames_bundle_encode(&f, small, sizeof small, &l);
    /* 85 61 't' 61 'c' 53 <18 bytes + NUL> F6 F6 */
    CHECK_EQ(n, 1 + 2 + 2 + 1 + 19 + 2);
    CHECK_EQ(small[5], 0x53);
    CHECK_EQ(small[n - 3], 0);
    CHECK_EQ(frames_bundle_encode(&f, small, n - 1, NULL), 0);
}

static void sha256_known_answers(void)
{
    static const uint8_t empty[32] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
        0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    static const uint8_t abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint8_t out[32];
    CHECK_STATUS(chunkprov_sha256(NULL, 0, out), CHUNKPROV_STATUS_OK);
    CHECK(memcmp(out, empty, 32) == 0);
    CHECK_STATUS(chunkprov_sha256((const uint8_t *)"abc", 3, out), CHUNKPROV_STATUS_OK);
    CHECK(memcmp(out, abc, 32) == 0);
    CHECK_STATUS(chunkprov_sha256((const uint8_t *)"abc", 3, NULL),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_sha256(NULL, 3, out), CHUNKPROV_STATUS_NULL_ARGUMENT);
}

static void status_names(void)
{
    static const struct {
        uint32_t value;
        const char *name;
    } names[] = {
        {CHUNKPROV_STATUS_OK, "CHUNKPROV_STATUS_OK"},
        {CHUNKPROV_STATUS_DUPLICATE, "CHUNKPROV_STATUS_DUPLICATE"},
        {CHUNKPROV_STATUS_COMPLETE, "CHUNKPROV_STATUS_COMPLETE"},
        {CHUNKPROV_STATUS_FRAME_MALFORMED, "CHUNKPROV_STATUS_FRAME_MALFORMED"},
        {CHUNKPROV_STATUS_FRAME_TRUNCATED, "CHUNKPROV_STATUS_FRAME_TRUNCATED"},
        {CHUNKPROV_STATUS_FRAME_OVERSIZED, "CHUNKPROV_STATUS_FRAME_OVERSIZED"},
        {CHUNKPROV_STATUS_FRAME_CRC, "CHUNKPROV_STATUS_FRAME_CRC"},
        {CHUNKPROV_STATUS_FOREIGN_NONCE, "CHUNKPROV_STATUS_FOREIGN_NONCE"},
        {CHUNKPROV_STATUS_FRAME_OUT_OF_RANGE, "CHUNKPROV_STATUS_FRAME_OUT_OF_RANGE"},
        {CHUNKPROV_STATUS_FRAME_INCONSISTENT, "CHUNKPROV_STATUS_FRAME_INCONSISTENT"},
        {CHUNKPROV_STATUS_SLOT_TOO_SMALL, "CHUNKPROV_STATUS_SLOT_TOO_SMALL"},
        {CHUNKPROV_STATUS_DIGEST_MISMATCH, "CHUNKPROV_STATUS_DIGEST_MISMATCH"},
        {CHUNKPROV_STATUS_BUNDLE_INVALID, "CHUNKPROV_STATUS_BUNDLE_INVALID"},
        {CHUNKPROV_STATUS_FLASH_MISMATCH, "CHUNKPROV_STATUS_FLASH_MISMATCH"},
        {CHUNKPROV_STATUS_STALE_TRANSFER, "CHUNKPROV_STATUS_STALE_TRANSFER"},
        {CHUNKPROV_STATUS_REJECTED, "CHUNKPROV_STATUS_REJECTED"},
        {CHUNKPROV_STATUS_NULL_ARGUMENT, "CHUNKPROV_STATUS_NULL_ARGUMENT"},
        {CHUNKPROV_STATUS_INVALID_ARGUMENT, "CHUNKPROV_STATUS_INVALID_ARGUMENT"},
        {CHUNKPROV_STATUS_NOT_INITIALIZED, "CHUNKPROV_STATUS_NOT_INITIALIZED"},
        {CHUNKPROV_STATUS_FLASH_ERROR, "CHUNKPROV_STATUS_FLASH_ERROR"},
        {CHUNKPROV_STATUS_ABORTED, "CHUNKPROV_STATUS_ABORTED"},
        {CHUNKPROV_STATUS_NOT_COMPLETE, "CHUNKPROV_STATUS_NOT_COMPLETE"},
        {3, "CHUNKPROV_STATUS_UNKNOWN"},
        {63, "CHUNKPROV_STATUS_UNKNOWN"},
        {76, "CHUNKPROV_STATUS_UNKNOWN"},
        {126, "CHUNKPROV_STATUS_UNKNOWN"},
        {134, "CHUNKPROV_STATUS_UNKNOWN"},
        {0xFFFFFFFFu, "CHUNKPROV_STATUS_UNKNOWN"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *got = chunkprov_status_name(names[i].value);
        test_context("status %lu", (unsigned long)names[i].value);
        CHECK(got != NULL);
        CHECK(strcmp(got, names[i].name) == 0);
    }
}

static void abi_sizes(void)
{
    CHECK_EQ(sizeof(chunkprov_reassembler), CHUNKPROV_REASSEMBLER_SIZE);
    CHECK_EQ(sizeof(chunkprov_reassembler), CHUNKPROV_REASSEMBLER_WORDS * 8);
    CHECK_EQ(_Alignof(chunkprov_reassembler), CHUNKPROV_REASSEMBLER_ALIGN);
    CHECK_EQ(CHUNKPROV_NONCE_LEN, 8);
    CHECK_EQ(sizeof(chunkprov_span), 8);
    CHECK_EQ(sizeof(chunkprov_credentials), 40);
    CHECK_EQ(sizeof(chunkprov_geometry), 12);
}

/* ---- the simulator ---- */

static uint8_t sim_mem[4096];
static uint8_t sim_map[NOR_SIM_MAP_BYTES(4096, 1)];

static void nor_sim_rules(void)
{
    nor_sim s;
    CHECK_EQ(nor_sim_init(&s, sim_mem, sim_map, 4096, 3, 1024), NOR_SIM_ERR_ALIGN);
    CHECK_EQ(nor_sim_init(&s, sim_mem, sim_map, 4096, 64, 1024), NOR_SIM_ERR_ALIGN);
    CHECK_EQ(nor_sim_init(&s, sim_mem, sim_map, 4096, 32, 16), NOR_SIM_ERR_ALIGN);
    CHECK_EQ(nor_sim_init(&s, sim_mem, sim_map, 4000, 4, 1024), NOR_SIM_ERR_ALIGN);
    CHECK_EQ(nor_sim_init(&s, sim_mem, sim_map, 4096, 4, 1024), 0);
    chunkprov_platform p = nor_sim_platform(&s, true);
    CHECK(p.ctx == &s && p.log != NULL);
    chunkprov_geometry g;
    CHECK_EQ(p.geometry(p.ctx, &g), 0);
    CHECK_EQ(g.write_size, 4);
    CHECK_EQ(g.erase_size, 1024);
    CHECK_EQ(g.capacity, 4096);

    uint8_t buf[16];
    CHECK_EQ(p.read(p.ctx, 4095, buf, 1), 0);
    CHECK_EQ(buf[0], 0xFF);
    CHECK_EQ(p.read(p.ctx, 4095, buf, 2), NOR_SIM_ERR_RANGE);
    CHECK_EQ(p.read(p.ctx, 0xFFFFFFFFu, buf, 2), NOR_SIM_ERR_RANGE);
    const uint8_t data[8] = {0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0};
    CHECK_EQ(p.write(p.ctx, 2, data, 4), NOR_SIM_ERR_ALIGN);
    CHECK_EQ(p.write(p.ctx, 4, data, 6), NOR_SIM_ERR_ALIGN);
    CHECK_EQ(p.write(p.ctx, 4096, data, 4), NOR_SIM_ERR_RANGE);
    CHECK_EQ(s.counts.violations, 5);
    CHECK_EQ(p.write(p.ctx, 8, data, 8), 0);
    CHECK_EQ(s.counts.writes, 1);
    CHECK_EQ(s.counts.units, 2);
    CHECK(nor_sim_unit_written(&s, 8) && nor_sim_unit_written(&s, 15));
    CHECK(!nor_sim_unit_written(&s, 16));
    CHECK_EQ(p.read(p.ctx, 8, buf, 8), 0);
    CHECK(memcmp(buf, data, 8) == 0);
    /* Written twice: refused, nothing changes. */
    const uint8_t zeros[4] = {0, 0, 0, 0};
    CHECK_EQ(p.write(p.ctx, 12, zeros, 4), NOR_SIM_ERR_TWICE);
    CHECK_EQ(p.write(p.ctx, 4, zeros, 8), NOR_SIM_ERR_TWICE);
    CHECK_EQ(s.mem[4], 0xFF);
    CHECK_EQ(s.mem[12], 0x9A);
    /* Erase: page granularity, back to 0xFF and writable. */
    CHECK_EQ(p.erase(p.ctx, 512, 1024), NOR_SIM_ERR_ALIGN);
    CHECK_EQ(p.erase(p.ctx, 0, 1000), NOR_SIM_ERR_ALIGN);
    CHECK_EQ(p.erase(p.ctx, 3072, 2048), NOR_SIM_ERR_RANGE);
    CHECK_EQ(p.erase(p.ctx, 0, 1024), 0);
    CHECK_EQ(s.counts.erases, 1);
    CHECK_EQ(s.counts.pages, 1);
    CHECK_EQ(s.mem[8], 0xFF);
    CHECK(!nor_sim_unit_written(&s, 8));
    CHECK_EQ(p.erase(p.ctx, 1024, 3072), 0);
    CHECK_EQ(s.counts.pages, 4);
    /* Writes only clear bits: a half-done unit keeps what it had. */
    s.mem[20] = 0x0F; /* as if a cut write had left bits cleared */
    const uint8_t f0[4] = {0xF0, 0xFF, 0xFF, 0xFF};
    CHECK_EQ(p.write(p.ctx, 20, f0, 4), 0);
    CHECK_EQ(s.mem[20], 0x00);
    CHECK_EQ(s.counts.reads, 2);
    CHECK_EQ(s.counts.violations, 10);
    nor_sim_reset_counts(&s);
    CHECK_EQ(s.counts.writes, 0);
    /* Direct access obeys the rules but counts nothing. */
    CHECK_EQ(nor_sim_program(&s, 20, f0, 4), NOR_SIM_ERR_TWICE);
    CHECK_EQ(nor_sim_program(&s, 24, f0, 4), 0);
    CHECK_EQ(nor_sim_erase_pages(&s, 0, 1024), 0);
    CHECK_EQ(s.counts.violations, 0);
    CHECK_EQ(s.counts.writes + s.counts.erases, 0);
}

static void nor_sim_fault_injection(void)
{
    nor_sim s;
    CHECK_EQ(nor_sim_init(&s, sim_mem, sim_map, 4096, 1, 256), 0);
    chunkprov_platform p = nor_sim_platform(&s, false);
    const uint8_t data[4] = {1, 2, 3, 4};
    uint8_t buf[4];
    /* The 2nd write or erase fails; reads do not count. */
    nor_sim_fail_nth(&s, NOR_SIM_OP_WRITE | NOR_SIM_OP_ERASE, 2, -77);
    CHECK_EQ(p.write(p.ctx, 0, data, 1), 0);
    CHECK_EQ(p.read(p.ctx, 0, buf, 4), 0);
    CHECK_EQ(p.erase(p.ctx, 256, 256), -77);
    CHECK_EQ(s.counts.injected, 1);
    CHECK_EQ(s.counts.erases, 0);
    CHECK_EQ(s.last_error, -77);
    CHECK_EQ(p.erase(p.ctx, 256, 256), 0);
    /* Default code, reads and geometry can fail too. */
    nor_sim_fail_nth(&s, NOR_SIM_OP_READ, 1, 0);
    CHECK_EQ(p.read(p.ctx, 0, buf, 4), NOR_SIM_ERR_INJECTED);
    CHECK_EQ(p.read(p.ctx, 0, buf, 4), 0);
    nor_sim_fail_nth(&s, NOR_SIM_OP_GEOMETRY, 1, -1);
    chunkprov_geometry g;
    CHECK_EQ(p.geometry(p.ctx, &g), -1);
    /* A power cut half way through the 2nd write: its first half is in
     * flash, then everything fails until power comes back. */
    CHECK_EQ(p.erase(p.ctx, 0, 256), 0);
    nor_sim_power_cut(&s, NOR_SIM_OP_WRITE | NOR_SIM_OP_ERASE, 2, true);
    CHECK_EQ(p.write(p.ctx, 0, data, 4), 0);
    CHECK_EQ(p.write(p.ctx, 8, data, 4), NOR_SIM_ERR_POWER);
    CHECK_EQ(s.mem[8], 1);
    CHECK_EQ(s.mem[9], 2);
    CHECK_EQ(s.mem[10], 0xFF);
    CHECK(s.powered_off);
    CHECK_EQ(p.read(p.ctx, 0, buf, 4), NOR_SIM_ERR_POWER);
    CHECK_EQ(p.erase(p.ctx, 0, 256), NOR_SIM_ERR_POWER);
    nor_sim_power_on(&s);
    CHECK_EQ(p.read(p.ctx, 8, buf, 4), 0);
    CHECK_EQ(buf[1], 2);
    /* Half an erase of two pages: the first page only. */
    nor_sim_power_cut(&s, NOR_SIM_OP_ERASE, 1, true);
    CHECK_EQ(p.write(p.ctx, 256, data, 4), 0);
    CHECK_EQ(p.erase(p.ctx, 0, 512), NOR_SIM_ERR_POWER);
    CHECK_EQ(s.mem[8], 0xFF);
    CHECK_EQ(s.mem[256], 1);
    nor_sim_power_on(&s);
    /* A cut that lets its operation finish. */
    nor_sim_power_cut(&s, NOR_SIM_OP_WRITE, 1, false);
    CHECK_EQ(p.write(p.ctx, 16, data, 4), 0);
    CHECK_EQ(s.mem[19], 4);
    CHECK_EQ(p.write(p.ctx, 20, data, 4), NOR_SIM_ERR_POWER);
    nor_sim_power_on(&s);
    CHECK_EQ(s.counts.violations, 0);
}

static void nor_sim_log_capture(void)
{
    nor_sim s;
    CHECK_EQ(nor_sim_init(&s, sim_mem, sim_map, 4096, 1, 256), 0);
    nor_sim_log_cb(&s, CHUNKPROV_LOG_LEVEL_WARN, "hello");
    nor_sim_log_cb(&s, CHUNKPROV_LOG_LEVEL_ERROR, "flash write failed: -5");
    CHECK_EQ(s.log.total, 2);
    CHECK_EQ(s.log.lines[CHUNKPROV_LOG_LEVEL_WARN], 1);
    CHECK(strcmp(s.log.last_error, "flash write failed: -5") == 0);
    CHECK_EQ(s.log.bad, 0);
}

int main(void)
{
    static const test_case cases[] = {
        TEST_CASE(crc32_check_values),
        TEST_CASE(cbor_heads_are_shortest),
        TEST_CASE(frame_bytes_match_the_spec),
        TEST_CASE(chunking_rule),
        TEST_CASE(bundle_encoding),
        TEST_CASE(sha256_known_answers),
        TEST_CASE(status_names),
        TEST_CASE(abi_sizes),
        TEST_CASE(nor_sim_rules),
        TEST_CASE(nor_sim_fault_injection),
        TEST_CASE(nor_sim_log_capture),
    };
    return test_run("test_support", cases, TEST_COUNT(cases));
}
