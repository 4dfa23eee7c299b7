/*
 * The provisioning client (chunkprov_client_*) driven end to end through the C
 * ABI, the way firmware drives it, against a stand-in for the cloud and the
 * MQTT broker written here in C (the C counterpart of device/tests/client.rs
 * and device/tests/power_cut.rs).
 *
 * The stand-in ("cloud_*") is NOT the cloud's code: it parses the device's
 * JSON minimally (Nonce, Window, PacketLimit, TransferId, Missing, ...),
 * answers a request with the first window of frames cut by frames.c for the
 * 37-byte topic chunkprov/claim-352656100000000/frame, a pull with exactly
 * the frames it lists, a confirmation with the CBOR [transfer id,
 * certificate id] on .../confirm/accepted; it can drop frames and answers,
 * or reject with the CBOR [nonce | null, code, message]. As a broker it keeps
 * clean sessions (a CONNECT drops queued messages and subscriptions) and
 * delivers only on subscribed topics.
 *
 * The driver polls the client and performs each action: CONNECT and
 * ROLLED_BACK -> connected (or disconnected, to refuse the new credentials),
 * SUBSCRIBE -> subscribed, PUBLISH -> the stand-in, WAIT -> the next queued
 * message through message_begin/_data (37-byte pieces)/_end, or tick;
 * DONE and GIVE_UP end the run.
 *
 * Flash: NOR, write unit 4, page 4096, 10 pages; the client's partition is
 * pages 1..8 (store.rs: 2 journal pages, then slots A and B of 1 header page
 * + 2 data pages each). Everything large is static (QEMU: 64 KiB stack).
 */
#include <stdio.h>
#include <string.h>

#include "chunkprov.h"
#include "fixture.h"
#include "frames.h"
#include "nor_sim.h"
#include "test.h"

/* Cut points the power-cut sweep tries: every one on the host, every
 * CHUNKPROV_SWEEP_STRIDE-th under QEMU (set by CMakeLists.txt). */
#ifndef CHUNKPROV_SWEEP_STRIDE
#define CHUNKPROV_SWEEP_STRIDE 1
#endif

/* ==================================================================== device */

#define WS 4u
#define PAGE 4096u
#define FLASH_SIZE (10u * PAGE)
#define PART_OFFSET PAGE
#define PART_SIZE (8u * PAGE)
/* Data pages of each slot: after the 2 journal pages and the slot's header
 * page (64 + 256 frames * 3 units * 4 bytes = 3136 bytes: one page). */
#define SLOT_A_DATA (PART_OFFSET + 3u * PAGE)
#define SLOT_B_DATA (PART_OFFSET + 6u * PAGE)

#define PREFIX "chunkprov"
#define SERIAL "352656100000000"
#define CLIENT_ID "claim-352656100000000"
#define CSR "MIIBCSRbase64url_-MIIBDTCBtAIBADBSMQswCQYDVQQGEwJERTEYMBYGA1UEAwwPMzUyNjU2MTAwMDAwMDAw"
#define FRAME_TOPIC_LEN 37u
#define PIECE 37u

#define MAX_RETRIES 3
#define MAX_PROVISIONS 3
#define MAX_CONFIRM_ATTEMPTS 3
#define MAX_BOOTS 5
#define TIMEOUT 1000u
#define BACKOFF_MAX 8000u

static uint8_t flash_mem[FLASH_SIZE];
static uint8_t flash_map[NOR_SIM_MAP_BYTES(FLASH_SIZE, WS)];
static nor_sim sim;
static chunkprov_platform platform;
static chunkprov_client_config cfg;
static chunkprov_client client;
static uint8_t poll_buf[1024];

/* The random callback: a deterministic generator (a TRNG on a device). */
static uint32_t rng_state;

static void random_cb(void *ctx, uint8_t *buf, uint32_t len)
{
    (void)ctx;
    for (uint32_t i = 0; i < len; i++) {
        rng_state = rng_state * 1103515245u + 12345u;
        buf[i] = (uint8_t)(rng_state >> 16);
    }
}

static void config_defaults(void)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.prefix = PREFIX;
    cfg.client_id = CLIENT_ID;
    cfg.serial = SERIAL;
    cfg.csr = CSR;
    cfg.packet_limit = 256;
    cfg.window = 4;
    cfg.max_retries = MAX_RETRIES;
    cfg.max_provisions = MAX_PROVISIONS;
    cfg.max_confirm_attempts = MAX_CONFIRM_ATTEMPTS;
    cfg.max_boots = MAX_BOOTS;
    cfg.timeout_ticks = TIMEOUT;
    cfg.backoff_max_ticks = BACKOFF_MAX;
    cfg.partition_offset = PART_OFFSET;
    cfg.partition_size = PART_SIZE;
}

/* A fresh (erased) flash and the platform over it; default config. */
static void flash_fresh(void)
{
    CHECK_EQ(nor_sim_init(&sim, flash_mem, flash_map, FLASH_SIZE, WS, PAGE), 0);
    platform = nor_sim_platform(&sim, true);
    platform.random = random_cb;
    rng_state = 0x12345678u;
    config_defaults();
}

/* A boot: chunkprov_client_start over whatever the storage held. */
static chunkprov_status boot(void)
{
    memset(&client, 0xA5, sizeof client);
    return chunkprov_client_start(&client, &platform, &cfg);
}

static void progress(uint16_t *held, uint16_t *count)
{
    CHECK_STATUS(chunkprov_client_progress(&client, held, count), CHUNKPROV_STATUS_OK);
}

/* ============================================ stand-in: the cloud + broker */

#define CLOUD_QUEUE 64u
#define CLOUD_MSG_MAX 320u
#define CLOUD_TOPIC_MAX 96u
#define CLOUD_SUBS 4u

typedef struct cloud_msg {
    char topic[CLOUD_TOPIC_MAX];
    uint8_t payload[CLOUD_MSG_MAX];
    uint32_t len;
    int frame; /* the frame's index, or -1 */
} cloud_msg;

static struct cloud {
    const fx_bundle *bundle;
    frames_transfer xfer;
    bool have_transfer;
    uint32_t next_tid;
    uint32_t window;
    uint32_t packet_limit;

    /* Messages on their way to the device (a ring). */
    cloud_msg queue[CLOUD_QUEUE];
    uint32_t head, queued;
    /* The broker's session: topics subscribed since the last CONNECT. */
    char subs[CLOUD_SUBS][CLOUD_TOPIC_MAX];
    uint32_t n_subs;

    /* Knobs. */
    uint16_t drop_once[16]; /* frame indices to drop the first time they are sent */
    uint32_t n_drop;
    uint32_t drop_answers;  /* confirmation answers to drop */
    uint32_t reject_code;   /* answer every request with this rejection (0: none) */
    bool reject_null_nonce; /* ... carrying null instead of the nonce */
    uint32_t reject_foreign_once; /* answer this many requests with another nonce's rejection */
    bool shuffle;           /* send every batch out of order, every third frame twice */

    /* What happened. */
    uint32_t requests, pulls, confirmations, frames_sent, dropped, undeliverable;
    uint32_t pulled[FRAMES_MAX_COUNT]; /* times each index was asked for by a pull */
} cloud;

static void cloud_reset(enum fx_kind kind)
{
    memset(&cloud, 0, sizeof cloud);
    cloud.bundle = fx_sample(kind);
    cloud.next_tid = 100;
    fx_seed(0xC0FFEEu);
}

static void cloud_topic(char *out, const char *id, const char *suffix)
{
    int n = snprintf(out, CLOUD_TOPIC_MAX, "%s/%s/%s", PREFIX, id, suffix);
    CHECK(n > 0 && (size_t)n < CLOUD_TOPIC_MAX);
}

/* The broker: a clean session on every CONNECT. */
static void broker_connect(void)
{
    cloud.head = 0;
    cloud.queued = 0;
    cloud.n_subs = 0;
}

static void broker_subscribe(const char *topic)
{
    CHECK(strlen(topic) < CLOUD_TOPIC_MAX);
    for (uint32_t i = 0; i < cloud.n_subs; i++) {
        if (strcmp(cloud.subs[i], topic) == 0) {
            return;
        }
    }
    CHECK(cloud.n_subs < CLOUD_SUBS);
    strcpy(cloud.subs[cloud.n_subs++], topic);
}

static bool broker_subscribed(const char *topic)
{
    for (uint32_t i = 0; i < cloud.n_subs; i++) {
        if (strcmp(cloud.subs[i], topic) == 0) {
            return true;
        }
    }
    return false;
}

static cloud_msg *cloud_push(const char *id, const char *suffix, int frame)
{
    CHECK(cloud.queued < CLOUD_QUEUE);
    cloud_msg *m = &cloud.queue[(cloud.head + cloud.queued++) % CLOUD_QUEUE];
    cloud_topic(m->topic, id, suffix);
    m->frame = frame;
    m->len = 0;
    return m;
}

static cloud_msg *cloud_pop(void)
{
    if (cloud.queued == 0) {
        return NULL;
    }
    cloud_msg *m = &cloud.queue[cloud.head];
    cloud.head = (cloud.head + 1) % CLOUD_QUEUE;
    cloud.queued--;
    return m;
}

/* Bytes of an MQTT remaining-length varint. */
static uint32_t varint_len(uint32_t v)
{
    return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

/* Bytes of a QoS 1 PUBLISH of `payload` bytes on a `topic`-byte topic. */
static uint32_t publish_packet_len(uint32_t topic, uint32_t payload)
{
    uint32_t r = 2 + topic + 2 + payload;
    return 1 + varint_len(r) + r;
}

/* protocol/README.md: the largest multiple of 32 whose frame (header at most
 * FRAMES_HEADER_MAX bytes) fits the packet limit on the frame topic. */
static uint32_t cloud_max_chunk(uint32_t packet_limit, uint32_t topic_len)
{
    for (uint32_t c = packet_limit / FRAMES_ALIGN * FRAMES_ALIGN; c >= FRAMES_ALIGN;
         c -= FRAMES_ALIGN) {
        if (publish_packet_len(topic_len, FRAMES_HEADER_MAX + c) <= packet_limit) {
            return c;
        }
    }
    return 0;
}

static void cloud_send_frame(uint32_t i)
{
    for (uint32_t k = 0; k < cloud.n_drop; k++) {
        if (cloud.drop_once[k] == i) {
            cloud.drop_once[k] = cloud.drop_once[--cloud.n_drop];
            cloud.dropped++;
            return;
        }
    }
    cloud_msg *m = cloud_push(CLIENT_ID, "frame", (int)i);
    CHECK_EQ(strlen(m->topic), FRAME_TOPIC_LEN);
    size_t n = frames_transfer_frame(&cloud.xfer, i, m->payload, sizeof m->payload);
    CHECK(n > 0);
    m->len = (uint32_t)n;
    CHECK(publish_packet_len(FRAME_TOPIC_LEN, m->len) <= cloud.packet_limit);
    cloud.frames_sent++;
}

/* Sends frames idx[0..n): as listed, or (shuffle) out of order with every
 * third one twice. */
static void cloud_send_batch(const uint16_t *idx, uint32_t n)
{
    if (!cloud.shuffle) {
        for (uint32_t k = 0; k < n; k++) {
            cloud_send_frame(idx[k]);
        }
        return;
    }
    uint16_t order[2 * 16];
    CHECK(n <= 16);
    uint32_t len = fx_shuffled_with_duplicates(n, order);
    for (uint32_t k = 0; k < len; k++) {
        cloud_send_frame(idx[order[k]]);
    }
}

/* CBOR [nonce | null, code, message]. */
static void cloud_reject(const uint8_t *nonce, uint32_t code)
{
    static const char message[] = "rejected by the stand-in";
    cloud_msg *m = cloud_push(CLIENT_ID, "rejected", -1);
    uint8_t *p = m->payload;
    p += cbor_head(CBOR_MAJOR_ARRAY, 3, p);
    if (nonce == NULL) {
        *p++ = CBOR_NULL;
    } else {
        p += cbor_head(CBOR_MAJOR_BYTES, CHUNKPROV_NONCE_LEN, p);
        memcpy(p, nonce, CHUNKPROV_NONCE_LEN);
        p += CHUNKPROV_NONCE_LEN;
    }
    p += cbor_head(CBOR_MAJOR_UINT, code, p);
    p += cbor_head(CBOR_MAJOR_TEXT, sizeof message - 1, p);
    memcpy(p, message, sizeof message - 1);
    p += sizeof message - 1;
    m->len = (uint32_t)(p - m->payload);
}

/* ---- minimal JSON reading: the device's compact objects ---- */

/* The value of "key" in json (NUL-terminated), or NULL. */
static const char *json_value(const char *json, const char *key)
{
    char pattern[40];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    if (at == NULL) {
        return NULL;
    }
    at += strlen(pattern);
    while (*at == ' ') {
        at++;
    }
    return at;
}

static bool json_uint(const char *json, const char *key, uint32_t *out)
{
    const char *v = json_value(json, key);
    if (v == NULL || *v < '0' || *v > '9') {
        return false;
    }
    uint64_t n = 0;
    while (*v >= '0' && *v <= '9') {
        n = n * 10 + (uint64_t)(*v++ - '0');
        if (n > 0xFFFFFFFFu) {
            return false;
        }
    }
    *out = (uint32_t)n;
    return true;
}

/* A string value without escapes, copied NUL-terminated into out. */
static bool json_string(const char *json, const char *key, char *out, size_t cap)
{
    const char *v = json_value(json, key);
    if (v == NULL || *v != '"') {
        return false;
    }
    v++;
    size_t n = 0;
    while (v[n] != '"') {
        if (v[n] == '\0' || v[n] == '\\' || n + 1 >= cap) {
            return false;
        }
        out[n] = v[n];
        n++;
    }
    out[n] = '\0';
    return true;
}

static bool json_uints(const char *json, const char *key, uint16_t *out, uint32_t cap,
                       uint32_t *n)
{
    const char *v = json_value(json, key);
    *n = 0;
    if (v == NULL || *v++ != '[') {
        return false;
    }
    while (*v != ']') {
        uint32_t x = 0;
        if (*v < '0' || *v > '9' || *n >= cap) {
            return false;
        }
        while (*v >= '0' && *v <= '9') {
            x = x * 10 + (uint32_t)(*v++ - '0');
        }
        out[(*n)++] = (uint16_t)x;
        if (*v == ',') {
            v++;
        } else if (*v != ']') {
            return false;
        }
    }
    return true;
}

static bool hex_nonce(const char *hex, uint8_t *out)
{
    if (strlen(hex) != 2 * CHUNKPROV_NONCE_LEN) {
        return false;
    }
    for (uint32_t i = 0; i < 2 * CHUNKPROV_NONCE_LEN; i++) {
        char c = hex[i];
        uint8_t d = (c >= '0' && c <= '9')   ? (uint8_t)(c - '0')
                    : (c >= 'a' && c <= 'f') ? (uint8_t)(c - 'a' + 10)
                    : (c >= 'A' && c <= 'F') ? (uint8_t)(c - 'A' + 10)
                                             : 0xFF;
        if (d == 0xFF) {
            return false;
        }
        out[i / 2] = (uint8_t)(i % 2 == 0 ? d << 4 : out[i / 2] | d);
    }
    return true;
}

/* ---- the device's messages ---- */

static void cloud_request(const char *json)
{
    char topic[CLOUD_TOPIC_MAX], s[256];
    uint8_t nonce[CHUNKPROV_NONCE_LEN];
    uint32_t window = 0, limit = 0;
    cloud_topic(topic, CLIENT_ID, "frame");
    CHECK(broker_subscribed(topic));
    cloud_topic(topic, CLIENT_ID, "rejected");
    CHECK(broker_subscribed(topic));
    CHECK(json_string(json, "SerialNumber", s, sizeof s));
    CHECK(strcmp(s, SERIAL) == 0);
    if (cfg.csr != NULL) {
        CHECK(json_string(json, "Csr", s, sizeof s));
        CHECK(strcmp(s, cfg.csr) == 0);
    } else {
        CHECK(json_value(json, "Csr") == NULL);
    }
    CHECK(json_string(json, "Nonce", s, sizeof s));
    CHECK(hex_nonce(s, nonce));
    CHECK(json_uint(json, "Window", &window));
    CHECK(json_uint(json, "PacketLimit", &limit));
    CHECK_EQ(window, cfg.window);
    CHECK_EQ(limit, cfg.packet_limit);
    cloud.requests++;
    if (cloud.reject_foreign_once > 0) {
        cloud.reject_foreign_once--;
        uint8_t other[CHUNKPROV_NONCE_LEN];
        for (uint32_t i = 0; i < CHUNKPROV_NONCE_LEN; i++) {
            other[i] = (uint8_t)~nonce[i];
        }
        cloud_reject(other, 16 /* AlreadyProvisioned: final, were it this device's */);
        return;
    }
    if (cloud.reject_code != 0) {
        cloud_reject(cloud.reject_null_nonce ? NULL : nonce, cloud.reject_code);
        return;
    }
    /* The same nonce again: the same transfer, its first window again. */
    if (!cloud.have_transfer || memcmp(nonce, cloud.xfer.nonce, sizeof nonce) != 0) {
        uint32_t max_chunk = cloud_max_chunk(limit, FRAME_TOPIC_LEN);
        CHECK(max_chunk > 0);
        CHECK(frames_transfer_init(&cloud.xfer, cloud.bundle->bytes, cloud.bundle->len,
                                   max_chunk, nonce, cloud.next_tid++));
        cloud.have_transfer = true;
    }
    cloud.window = window;
    cloud.packet_limit = limit;
    uint16_t first[16 + 1];
    uint32_t n = window < cloud.xfer.plan.count ? window : cloud.xfer.plan.count;
    if (cloud.shuffle) {
        for (uint32_t i = 0; i < n; i++) {
            first[i] = (uint16_t)i;
        }
        cloud_send_batch(first, n);
    } else {
        /* The first window in reverse order, its first frame twice. */
        for (uint32_t i = 0; i < n; i++) {
            first[i] = (uint16_t)(n - 1 - i);
        }
        first[n] = 0;
        cloud_send_batch(first, n + 1);
    }
}

static void cloud_pull(const char *json)
{
    char s[64];
    uint8_t nonce[CHUNKPROV_NONCE_LEN];
    uint32_t tid = 0, next = 0, n = 0;
    uint16_t missing[16 + 1];
    CHECK(json_string(json, "Nonce", s, sizeof s));
    CHECK(hex_nonce(s, nonce));
    CHECK(json_uint(json, "TransferId", &tid));
    bool has_missing = json_uints(json, "Missing", missing, 16, &n);
    bool has_next = json_uint(json, "Next", &next);
    CHECK(has_missing || has_next);
    cloud.pulls++;
    if (!cloud.have_transfer || memcmp(nonce, cloud.xfer.nonce, sizeof nonce) != 0 ||
        tid != cloud.xfer.transfer_id) {
        cloud_reject(nonce, 17 /* UnknownTransfer */);
        return;
    }
    CHECK(n <= cloud.window);
    for (uint32_t k = 0; k < n; k++) {
        CHECK(missing[k] < cloud.xfer.plan.count);
        cloud.pulled[missing[k]]++;
    }
    if (has_next) {
        for (uint32_t i = next; i < next + cloud.window && i < cloud.xfer.plan.count; i++) {
            CHECK(n < 16 + 1);
            missing[n++] = (uint16_t)i;
        }
    }
    cloud_send_batch(missing, n);
}

static void cloud_confirm(const char *json)
{
    char topic[CLOUD_TOPIC_MAX], id[80];
    uint32_t tid = 0;
    cloud_topic(topic, fx_thing_name, "confirm/accepted");
    CHECK(broker_subscribed(topic));
    CHECK(json_uint(json, "TransferId", &tid));
    CHECK(json_string(json, "CertificateId", id, sizeof id));
    CHECK(cloud.have_transfer);
    CHECK_EQ(tid, cloud.xfer.transfer_id);
    CHECK(strcmp(id, fx_certificate_id) == 0);
    cloud.confirmations++;
    if (cloud.drop_answers > 0) {
        cloud.drop_answers--;
        return;
    }
    /* CBOR [transfer id, certificate id]. */
    cloud_msg *m = cloud_push(fx_thing_name, "confirm/accepted", -1);
    uint8_t *p = m->payload;
    p += cbor_head(CBOR_MAJOR_ARRAY, 2, p);
    p += cbor_head(CBOR_MAJOR_UINT, tid, p);
    p += cbor_head(CBOR_MAJOR_TEXT, strlen(id), p);
    memcpy(p, id, strlen(id));
    p += strlen(id);
    m->len = (uint32_t)(p - m->payload);
}

/* A PUBLISH from the device. */
static void cloud_publish(const char *topic, size_t topic_len, const uint8_t *payload,
                          size_t len)
{
    static char json[1024];
    char want[CLOUD_TOPIC_MAX];
    CHECK(len < sizeof json);
    memcpy(json, payload, len);
    json[len] = '\0';
    CHECK_EQ(strlen(topic), topic_len);
    cloud_topic(want, CLIENT_ID, "json");
    if (strcmp(topic, want) == 0) {
        cloud_request(json);
        return;
    }
    cloud_topic(want, CLIENT_ID, "pull");
    if (strcmp(topic, want) == 0) {
        cloud_pull(json);
        return;
    }
    cloud_topic(want, fx_thing_name, "confirm");
    if (strcmp(topic, want) == 0) {
        cloud_confirm(json);
        return;
    }
    test_fail(__FILE__, __LINE__, "the device published on %s", topic);
}

/* ==================================================================== driver */

/* Checks that credentials (of slot) point at the bundle's items in the
 * simulated flash: the slot's data pages hold the bundle, every span is where
 * the encoder put the item, PEMs end with their NUL. */
static void check_credentials(uint8_t slot, const chunkprov_credentials *c, const fx_bundle *b)
{
    CHECK(slot <= 1);
    uint32_t base = slot == 0 ? SLOT_A_DATA : SLOT_B_DATA;
    CHECK(memcmp(flash_mem + base, b->bytes, b->len) == 0);
    const chunkprov_span *got[5] = {&c->thing_name, &c->certificate_id, &c->certificate,
                                    &c->private_key, &c->server_ca};
    const frames_span *want[5] = {&b->layout.thing_name, &b->layout.certificate_id,
                                  &b->layout.certificate, &b->layout.private_key,
                                  &b->layout.server_ca};
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(got[i]->len, want[i]->len);
        if (want[i]->len != 0) {
            CHECK_EQ(got[i]->offset, base + want[i]->offset);
            CHECK(got[i]->offset + got[i]->len <= FLASH_SIZE);
        }
        if (i >= 2 && got[i]->len != 0) {
            const char *pem = (const char *)flash_mem + got[i]->offset;
            CHECK(memcmp(pem, "-----BEGIN ", 11) == 0);
            CHECK_EQ(pem[got[i]->len - 1], 0);
            CHECK_EQ(strlen(pem), got[i]->len - 1);
        }
    }
    CHECK_EQ(c->thing_name.len, strlen(fx_thing_name));
    CHECK(memcmp(flash_mem + c->thing_name.offset, fx_thing_name, c->thing_name.len) == 0);
    CHECK_EQ(c->certificate_id.len, strlen(fx_certificate_id));
    CHECK(memcmp(flash_mem + c->certificate_id.offset, fx_certificate_id,
                 c->certificate_id.len) == 0);
    CHECK(memcmp(flash_mem + c->certificate.offset, "-----BEGIN CERTIFICATE-----", 27) == 0);
}

/* What happened in one run of the driver. */
typedef struct run {
    uint32_t steps;
    char connects[64];   /* c: CONNECT claim, n: CONNECT new, C/N: ROLLED_BACK claim/new */
    uint32_t n_connects;
    uint32_t rolled_back, published, delivered;
    uint32_t refuse_new; /* refuse this many connections with the new credentials */
    bool finished;       /* DONE or GIVE_UP */
    chunkprov_action end;
    const char *failed_in; /* the client function that returned non-OK */
    /* Frames the device took (delivered, then held one more). */
    uint8_t took[FRAMES_MAX_COUNT];
    uint32_t n_took;
    /* Flash writes + erases done when a frame completed the bundle. */
    uint32_t ops_at_complete;
    /* Fault injection armed once this many frames were taken (0: off). */
    uint32_t arm_after;
    uint32_t arm_kinds, arm_nth;
    /* Make the flash write of the next refused connection's attempt fail. */
    bool fail_refusal_write;
    /* Notices from chunkprov_client_message_end(), by kind. */
    uint32_t notices[8];
} run;

static void run_init(run *r) { memset(r, 0, sizeof *r); }

static void note_connect(run *r, char c)
{
    if (r->n_connects + 1 < sizeof r->connects) {
        r->connects[r->n_connects++] = c;
        r->connects[r->n_connects] = '\0';
    }
}

#define TRY(r, call)                     \
    do {                                 \
        chunkprov_status st_ = (call);   \
        if (st_ != CHUNKPROV_STATUS_OK) { \
            (r)->failed_in = #call;      \
            return st_;                  \
        }                                \
    } while (0)

/* Delivers one queued message as the MQTT stack would. */
static chunkprov_status deliver(run *r, const cloud_msg *m)
{
    if (!broker_subscribed(m->topic)) {
        cloud.undeliverable++;
        return CHUNKPROV_STATUS_OK;
    }
    uint16_t held_before = 0, held = 0, count = 0;
    progress(&held_before, &count);
    r->delivered++;
    TRY(r, chunkprov_client_message_begin(&client, &cfg, m->topic, strlen(m->topic)));
    for (uint32_t at = 0; at < m->len; at += PIECE) {
        uint32_t n = m->len - at < PIECE ? m->len - at : PIECE;
        TRY(r, chunkprov_client_message_data(&client, &platform, m->payload + at, n));
    }
    chunkprov_notice notice;
    memset(&notice, 0xEE, sizeof notice);
    TRY(r, chunkprov_client_message_end(&client, &platform, &cfg, &notice));
    if ((unsigned)notice.kind < sizeof r->notices / sizeof r->notices[0]) {
        r->notices[notice.kind]++;
    }
    progress(&held, &count);
    if (notice.kind == CHUNKPROV_NOTICE_KIND_FRAME_HELD) {
        CHECK_EQ(notice.held, held);
        CHECK_EQ(notice.count, count);
        CHECK(notice.has_index && (int32_t)notice.index == m->frame);
    }
    if (m->frame >= 0 && count == 0 && held_before > 0) {
        r->ops_at_complete = sim.counts.writes + sim.counts.erases;
    }
    if (m->frame >= 0 && held == held_before + 1) {
        r->took[m->frame] = 1;
        r->n_took++;
        if (r->arm_after != 0 && r->n_took == r->arm_after) {
            nor_sim_fail_nth(&sim, r->arm_kinds, r->arm_nth, NOR_SIM_ERR_INJECTED);
        }
    }
    return CHUNKPROV_STATUS_OK;
}

/* Performs one action. */
static chunkprov_status perform(run *r, const chunkprov_action *a)
{
    switch (a->kind) {
    case CHUNKPROV_ACTION_KIND_CONNECT:
    case CHUNKPROV_ACTION_KIND_ROLLED_BACK: {
        bool rolled = a->kind == CHUNKPROV_ACTION_KIND_ROLLED_BACK;
        r->rolled_back += rolled;
        note_connect(r, a->claim ? (rolled ? 'C' : 'c') : (rolled ? 'N' : 'n'));
        broker_connect();
        if (!a->claim) {
            check_credentials(a->slot, &a->credentials, cloud.bundle);
            if (r->refuse_new > 0) {
                r->refuse_new--;
                if (r->fail_refusal_write) {
                    r->fail_refusal_write = false;
                    nor_sim_fail_nth(&sim, NOR_SIM_OP_WRITE, 1, NOR_SIM_ERR_INJECTED);
                }
                TRY(r, chunkprov_client_disconnected(&client, &platform, &cfg));
                return CHUNKPROV_STATUS_OK;
            }
        }
        TRY(r, chunkprov_client_connected(&client));
        return CHUNKPROV_STATUS_OK;
    }
    case CHUNKPROV_ACTION_KIND_SUBSCRIBE:
        CHECK(a->topic != NULL);
        CHECK_EQ(strlen(a->topic), a->topic_len);
        broker_subscribe(a->topic);
        TRY(r, chunkprov_client_subscribed(&client));
        return CHUNKPROV_STATUS_OK;
    case CHUNKPROV_ACTION_KIND_PUBLISH:
        CHECK(a->topic != NULL && a->payload != NULL);
        r->published++;
        cloud_publish(a->topic, a->topic_len, a->payload, a->payload_len);
        return CHUNKPROV_STATUS_OK;
    case CHUNKPROV_ACTION_KIND_WAIT: {
        const cloud_msg *m = cloud_pop();
        if (m != NULL) {
            return deliver(r, m);
        }
        CHECK(a->wait_ticks <= 2 * BACKOFF_MAX);
        TRY(r, chunkprov_client_tick(&client, a->wait_ticks > 0 ? a->wait_ticks : 1));
        return CHUNKPROV_STATUS_OK;
    }
    case CHUNKPROV_ACTION_KIND_DONE:
        check_credentials(a->slot, &a->credentials, cloud.bundle);
        r->finished = true;
        r->end = *a;
        return CHUNKPROV_STATUS_OK;
    case CHUNKPROV_ACTION_KIND_GIVE_UP:
        r->finished = true;
        r->end = *a;
        return CHUNKPROV_STATUS_OK;
    }
    test_fail(__FILE__, __LINE__, "unknown action kind %d", (int)a->kind);
}

static chunkprov_status poll_once(run *r, chunkprov_action *a)
{
    memset(a, 0xEE, sizeof *a);
    TRY(r, chunkprov_client_poll(&client, &platform, &cfg, poll_buf, sizeof poll_buf, a));
    return CHUNKPROV_STATUS_OK;
}

/* Polls and performs up to max_steps actions; stops at DONE, GIVE_UP or the
 * first client function that does not return OK (that status is returned). */
static chunkprov_status drive(run *r, uint32_t max_steps)
{
    chunkprov_action a;
    for (uint32_t i = 0; i < max_steps && !r->finished; i++) {
        r->steps++;
        chunkprov_status st = poll_once(r, &a);
        if (st == CHUNKPROV_STATUS_OK) {
            st = perform(r, &a);
        }
        if (st != CHUNKPROV_STATUS_OK) {
            return st;
        }
    }
    return CHUNKPROV_STATUS_OK;
}

/* Runs to the end; the run must finish with `kind`. */
static void drive_to_end(run *r, chunkprov_action_kind kind)
{
    chunkprov_status st = drive(r, 100000);
    if (st != CHUNKPROV_STATUS_OK) {
        test_fail(__FILE__, __LINE__, "%s returned %s", r->failed_in, chunkprov_status_name(st));
    }
    CHECK(r->finished);
    CHECK_EQ(r->end.kind, kind);
}

static uint32_t windows_of(uint32_t count, uint32_t window)
{
    return (count + window - 1) / window;
}

/* Provisions a fresh device to DONE (slot A). */
static void provision(run *r, enum fx_kind kind)
{
    flash_fresh();
    cloud_reset(kind);
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(r);
    drive_to_end(r, CHUNKPROV_ACTION_KIND_DONE);
    CHECK_EQ(r->end.slot, 0);
}

/* ===================================================================== cases */

/* 1. CSR mode: request, windows, pulls, commit, reconnect, confirm. */
static void happy_path_csr_mode(void)
{
    static run r;
    provision(&r, FX_CERT_CA);
    uint32_t count = cloud.xfer.plan.count;
    printf("    %lu-byte bundle, %lu frames of %lu bytes; %lu actions, %lu published, "
           "%lu delivered\n",
           (unsigned long)cloud.bundle->len, (unsigned long)count,
           (unsigned long)cloud.xfer.plan.chunk, (unsigned long)r.steps,
           (unsigned long)r.published, (unsigned long)r.delivered);
    CHECK(count >= 12);
    CHECK_EQ(cloud.xfer.plan.chunk, 128);
    CHECK_EQ(cloud.requests, 1);
    CHECK_EQ(cloud.confirmations, 1);
    CHECK_EQ(cloud.undeliverable, 0);
    CHECK(strcmp(r.connects, "cn") == 0);
    /* What message_end told the firmware: every frame but the last held, one commit, one
     * confirmation. */
    CHECK_EQ(r.notices[CHUNKPROV_NOTICE_KIND_FRAME_HELD], count - 1);
    CHECK_EQ(r.notices[CHUNKPROV_NOTICE_KIND_COMMITTED], 1);
    CHECK_EQ(r.notices[CHUNKPROV_NOTICE_KIND_CONFIRMED], 1);
    CHECK_EQ(r.end.credentials.private_key.len, 0);
    CHECK(r.end.credentials.server_ca.len > 0);
    /* Every frame after the first window was pulled. */
    for (uint32_t i = cfg.window; i < count; i++) {
        CHECK(cloud.pulled[i] >= 1);
    }
    /* The client kept to its partition and the NOR rules. */
    CHECK_EQ(sim.counts.violations, 0);
    for (uint32_t at = 0; at < FLASH_SIZE; at += WS) {
        if (at < PART_OFFSET || at >= PART_OFFSET + PART_SIZE) {
            CHECK(!nor_sim_unit_written(&sim, at));
        }
    }
    /* The next boot is DONE at once, without the network. */
    test_context("reboot after DONE");
    chunkprov_credentials first = r.end.credentials;
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_DONE);
    CHECK_EQ(r.steps, 1);
    CHECK_EQ(r.end.slot, 0);
    CHECK(memcmp(&r.end.credentials, &first, sizeof first) == 0);
    uint16_t held = 9, cnt = 9;
    progress(&held, &cnt);
    CHECK_EQ(held, 0);
    CHECK_EQ(cnt, 0);
}

/* 1, message counts: 1 request, 1 pull per window after the first (the
 * request's answer brings the first window), 1 confirmation. */
static void fewest_messages(void)
{
    static run r;
    provision(&r, FX_CERT_CA);
    uint32_t count = cloud.xfer.plan.count;
    uint32_t windows = windows_of(count, cfg.window);
    printf("    %lu frames, %lu windows: %lu requests, %lu pulls, %lu confirmations; "
           "frames pulled: ",
           (unsigned long)count, (unsigned long)windows, (unsigned long)cloud.requests,
           (unsigned long)cloud.pulls, (unsigned long)cloud.confirmations);
    for (uint32_t i = 0; i < count; i++) {
        if (cloud.pulled[i] != 0) {
            printf("%lu%s ", (unsigned long)i, cloud.pulled[i] > 1 ? "(again)" : "");
        }
    }
    printf("\n");
    /* The first window is on its way after the request: not pulled. */
    for (uint32_t i = 0; i < cfg.window; i++) {
        test_context("frame %lu of the first window (in flight) pulled", (unsigned long)i);
        CHECK_EQ(cloud.pulled[i], 0);
    }
    test_context("message counts");
    for (uint32_t i = cfg.window; i < count; i++) {
        CHECK_EQ(cloud.pulled[i], 1);
    }
    CHECK_EQ(cloud.requests, 1);
    CHECK_EQ(cloud.pulls, windows - 1);
    CHECK_EQ(cloud.confirmations, 1);
    CHECK_EQ(r.published, 1 + (windows - 1) + 1);
    /* Received: every frame once, the first window's duplicate, the answer. */
    CHECK_EQ(r.delivered, count + 1 + 1);
}

/* 1b. Key mode (no CSR): the bundle carries the private key. */
static void happy_path_key_mode(void)
{
    static run r;
    flash_fresh();
    cfg.csr = NULL;
    cloud_reset(FX_KEY_CA);
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_DONE);
    CHECK(r.end.credentials.private_key.len > 0);
    CHECK_EQ(cloud.requests, 1);
}

/* 2. Frames lost on the way are asked for again. */
static void dropped_frames_are_pulled_again(void)
{
    static run r;
    static const uint16_t drops[] = {1, 6, 9, 13};
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    memcpy(cloud.drop_once, drops, sizeof drops);
    cloud.n_drop = 4;
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_DONE);
    CHECK_EQ(r.end.slot, 0);
    CHECK_EQ(cloud.dropped, 4);
    CHECK_EQ(cloud.requests, 1);
    for (uint32_t k = 0; k < 4; k++) {
        test_context("dropped frame %u", (unsigned)drops[k]);
        /* Pulled once more than it would have been. */
        CHECK_EQ(cloud.pulled[drops[k]], drops[k] < cfg.window ? 1 : 2);
    }
    /* Frames that arrived were never asked for twice. */
    for (uint32_t i = 0; i < cloud.xfer.plan.count; i++) {
        CHECK(cloud.pulled[i] <= 2);
    }
}

/* 3. A reboot mid-transfer resumes with a pull of only the missing frames. */
static void reboot_mid_transfer_resumes(void)
{
    static run r;
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    CHECK_STATUS(drive(&r, 20), CHUNKPROV_STATUS_OK);
    CHECK(!r.finished);
    uint16_t held = 0, count = 0;
    progress(&held, &count);
    CHECK_EQ(held, r.n_took);
    CHECK(held > 0 && held < count);
    printf("    reboot after %lu actions holding %u of %u frames\n", (unsigned long)r.steps,
           (unsigned)held, (unsigned)count);

    test_context("after the reboot");
    uint32_t requests = cloud.requests;
    memset(cloud.pulled, 0, sizeof cloud.pulled);
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    uint16_t held2 = 0, count2 = 0;
    progress(&held2, &count2);
    CHECK_EQ(held2, held);
    CHECK_EQ(count2, count);
    static run r2;
    run_init(&r2);
    drive_to_end(&r2, CHUNKPROV_ACTION_KIND_DONE);
    CHECK_EQ(r2.end.slot, 0);
    CHECK_EQ(r2.connects[0], 'c');
    CHECK_EQ(cloud.requests, requests); /* resumed with a pull, not a new request */
    CHECK(cloud.pulls > 0);
    for (uint32_t i = 0; i < count; i++) {
        test_context("after the reboot: frame %lu", (unsigned long)i);
        if (r.took[i]) {
            CHECK_EQ(cloud.pulled[i], 0);
        } else {
            CHECK(cloud.pulled[i] >= 1);
        }
    }
}

/* 3, at the last moment: power lost after the last frame was held, before
 * the commit record. The next boot finds every frame held and verified: it
 * must not ask for any frame again, nor for a new transfer. */
static void reboot_with_every_frame_held(void)
{
    static run r;
    /* A clean run: how many flash writes/erases precede the commit record. */
    provision(&r, FX_CERT_CA);
    uint32_t before_commit = r.ops_at_complete - 1;
    uint32_t count = cloud.xfer.plan.count;

    flash_fresh();
    cloud_reset(FX_CERT_CA);
    nor_sim_power_cut(&sim, NOR_SIM_OP_WRITE | NOR_SIM_OP_ERASE, before_commit, false);
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    CHECK_STATUS(drive(&r, 100000), CHUNKPROV_STATUS_FLASH_ERROR);
    CHECK_EQ(r.n_took, count - 1); /* the last frame's end met the cut */
    nor_sim_power_on(&sim);

    test_context("after the reboot");
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    /* The verified bundle was committed while starting: nothing is left to receive. */
    uint16_t held = 1, n = 1;
    progress(&held, &n);
    CHECK_EQ(n, 0);
    CHECK_EQ(held, 0);
    uint32_t requests = cloud.requests;
    memset(cloud.pulled, 0, sizeof cloud.pulled);
    cloud.pulls = 0;
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_DONE);
    printf("    after the reboot: %lu requests, %lu pulls, connects %s\n",
           (unsigned long)(cloud.requests - requests), (unsigned long)cloud.pulls, r.connects);
    CHECK_EQ(cloud.requests, requests); /* no new transfer for a bundle it holds */
    CHECK_EQ(cloud.pulls, 0);
    CHECK_EQ(r.end.slot, 0);
}

/* 4. A confirmation answer that never comes: reconnect and confirm again. */
static void lost_confirmation_answer_is_retried(void)
{
    static run r;
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    cloud.drop_answers = 1;
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_DONE);
    CHECK_EQ(r.end.slot, 0);
    CHECK_EQ(cloud.confirmations, 2);
    CHECK_EQ(cloud.requests, 1);
    CHECK(strcmp(r.connects, "cnn") == 0);
}

/* 5. The new credentials never connect: after max_confirm_attempts they are
 * rolled back (ROLLED_BACK with the claim) and provisioning starts again. */
static void failed_reconnects_roll_back(void)
{
    static run r;
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    r.refuse_new = MAX_CONFIRM_ATTEMPTS;
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_DONE);
    CHECK_EQ(r.rolled_back, 1);
    CHECK(strcmp(r.connects, "cnnnCn") == 0);
    CHECK_EQ(cloud.requests, 2);
    CHECK_EQ(cloud.confirmations, 1);
    CHECK_EQ(r.end.slot, 0);
}

/* 6. New credentials that never work: re-provisioning stops at
 * max_provisions, and the device keeps (only) its claim identity. */
static void reprovisioning_is_capped(void)
{
    static run r;
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    r.refuse_new = 0xFFFFFFFFu;
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_GIVE_UP);
    CHECK_EQ(r.end.give_up, CHUNKPROV_GIVE_UP_REPROVISION_LIMIT);
    CHECK_EQ(cloud.requests, MAX_PROVISIONS);
    CHECK_EQ(r.rolled_back, MAX_PROVISIONS);
    CHECK_EQ(cloud.confirmations, 0);

    test_context("after a reboot");
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_GIVE_UP);
    CHECK_EQ(r.end.give_up, CHUNKPROV_GIVE_UP_REPROVISION_LIMIT);
    CHECK_EQ(r.connects[0], 'c');
    CHECK(strchr(r.connects, 'n') == NULL);
    CHECK_EQ(cloud.requests, MAX_PROVISIONS);
}

/* 7. Rejections: a final code gives up with it; another request's rejection
 * is ignored; a retryable one backs off until the request cap. */
static void rejections(void)
{
    static run r;
    test_context("CsrSubjectMismatch (10) with the nonce");
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    cloud.reject_code = 10;
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_GIVE_UP);
    CHECK_EQ(r.end.give_up, CHUNKPROV_GIVE_UP_REJECTED);
    CHECK_EQ(r.end.reject_code, 10);
    CHECK_EQ(cloud.requests, 1);
    /* Given up for good: the next poll says so again. */
    r.finished = false;
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_GIVE_UP);
    CHECK_EQ(r.end.reject_code, 10);
    CHECK_EQ(cloud.requests, 1);

    test_context("NotAllowed (14) with a null nonce");
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    cloud.reject_code = 14;
    cloud.reject_null_nonce = true;
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_GIVE_UP);
    CHECK_EQ(r.end.give_up, CHUNKPROV_GIVE_UP_REJECTED);
    CHECK_EQ(r.end.reject_code, 14);

    test_context("a rejection of another nonce is not ours");
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    cloud.reject_foreign_once = 1;
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_DONE);
    CHECK_EQ(cloud.requests, 2);

    test_context("Throttled (21) every time: retried up to max_provisions");
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    cloud.reject_code = 21;
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_GIVE_UP);
    CHECK_EQ(r.end.give_up, CHUNKPROV_GIVE_UP_REPROVISION_LIMIT);
    CHECK_EQ(cloud.requests, MAX_PROVISIONS);
}

/* 8. A flash callback failing during the transfer is reported as
 * FLASH_ERROR by the client function that met it (and logged with the
 * callback's value); after a reboot the device finishes. */
static void flash_errors_surface(void)
{
    enum { LAST = 0xFFFF }; /* armed once all frames but the last were taken */
    static run r;
    static const struct {
        uint32_t kinds, nth, arm_after;
    } faults[] = {
        {NOR_SIM_OP_ERASE, 1, 0},    /* the slot's erase, as the first frame arrives */
        {NOR_SIM_OP_WRITE, 1, 0},    /* the first write: a journal record (the request) */
        {NOR_SIM_OP_WRITE, 2, 0},
        {NOR_SIM_OP_WRITE, 1, 1},    /* writes once a frame was taken: payload, markers */
        {NOR_SIM_OP_WRITE, 2, 1},
        {NOR_SIM_OP_WRITE, 3, 1},
        {NOR_SIM_OP_WRITE, 5, 1},
        {NOR_SIM_OP_WRITE, 8, 3},
        {NOR_SIM_OP_WRITE, 13, 5},
        {NOR_SIM_OP_WRITE, 21, 8},
        {NOR_SIM_OP_READ, 1, 1},
        {NOR_SIM_OP_READ, 2, 1},
        {NOR_SIM_OP_READ, 7, 4},
        {NOR_SIM_OP_GEOMETRY, 3, 2},
        {NOR_SIM_OP_READ, 1, LAST},  /* a read as the last frame arrives */
        {NOR_SIM_OP_WRITE, 1, LAST}, /* its payload, marker or the commit record */
        {NOR_SIM_OP_WRITE, 3, LAST},
    };
    static char seen[sizeof faults / sizeof faults[0]][80];
    /* The frame count of the sample bundle at the configured packet limit. */
    frames_plan plan;
    CHECK(frames_plan_for_bundle(fx_sample(FX_CERT_CA)->len,
                                 cloud_max_chunk(cfg.packet_limit, FRAME_TOPIC_LEN), &plan));
    for (uint32_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
        uint32_t after = faults[f].arm_after == LAST ? plan.count - 1 : faults[f].arm_after;
        test_context("fault %lu: kinds %lu, nth %lu after %lu frames", (unsigned long)f,
                     (unsigned long)faults[f].kinds, (unsigned long)faults[f].nth,
                     (unsigned long)after);
        flash_fresh();
        cloud_reset(FX_CERT_CA);
        CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
        run_init(&r);
        if (after == 0) {
            nor_sim_fail_nth(&sim, faults[f].kinds, faults[f].nth, NOR_SIM_ERR_INJECTED);
        } else {
            r.arm_after = after;
            r.arm_kinds = faults[f].kinds;
            r.arm_nth = faults[f].nth;
        }
        chunkprov_status st = drive(&r, 100000);
        CHECK(!r.finished);
        CHECK_STATUS(st, CHUNKPROV_STATUS_FLASH_ERROR);
        CHECK_EQ(sim.counts.injected, 1);
        CHECK(strstr(sim.log.last_error, "failed: -5") != NULL);
        snprintf(seen[f], sizeof seen[f], "%s", r.failed_in);
        /* Reboot: the device picks up from flash and finishes. */
        test_context("fault %lu: after the reboot", (unsigned long)f);
        CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
        run_init(&r);
        drive_to_end(&r, CHUNKPROV_ACTION_KIND_DONE);
        CHECK_EQ(r.end.slot, 0);
        CHECK_EQ(sim.counts.violations, 0);
    }
    /* A refused connection with the new credentials is a failed attempt,
     * counted in flash: its write failing surfaces from disconnected. */
    test_context("the write counting a failed confirmation attempt");
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    r.refuse_new = 1;
    r.fail_refusal_write = true;
    CHECK_STATUS(drive(&r, 100000), CHUNKPROV_STATUS_FLASH_ERROR);
    CHECK(strstr(r.failed_in, "chunkprov_client_disconnected") != NULL);
    CHECK(strstr(sim.log.last_error, "failed: -5") != NULL);
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_DONE);
    CHECK_EQ(r.connects[0], 'n'); /* still pending after the reboot */

    /* Where the failures surfaced (the function names, as called). */
    for (uint32_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
        const char *name = strstr(seen[f], "chunkprov_client_");
        const char *paren = name != NULL ? strchr(name, '(') : NULL;
        int len = paren != NULL ? (int)(paren - name) : 0;
        printf("    fault %2lu: FLASH_ERROR from %.*s\n", (unsigned long)f, len,
               name != NULL ? name : "?");
    }
}

/* 9. NULL arguments, an unstarted (zeroed) client, a platform without
 * random, and configurations the client cannot use. */
static void null_arguments_and_unstarted_client(void)
{
    static chunkprov_client zeroed;
    chunkprov_action a;
    uint16_t h, n;
    const uint8_t byte = 0;
    flash_fresh();
    cloud_reset(FX_CERT_CA);

    test_context("NULL client");
    CHECK_STATUS(chunkprov_client_start(NULL, &platform, &cfg), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_poll(NULL, &platform, &cfg, poll_buf, sizeof poll_buf, &a),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_connected(NULL), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_disconnected(NULL, &platform, &cfg),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_subscribed(NULL), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_tick(NULL, 1), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_message_begin(NULL, &cfg, "t", 1),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_message_data(NULL, &platform, &byte, 1),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_message_end(NULL, &platform, &cfg, NULL),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_progress(NULL, &h, &n), CHUNKPROV_STATUS_NULL_ARGUMENT);

    test_context("zeroed client: not started");
    memset(&zeroed, 0, sizeof zeroed);
    CHECK_STATUS(chunkprov_client_poll(&zeroed, &platform, &cfg, poll_buf, sizeof poll_buf, &a),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_STATUS(chunkprov_client_connected(&zeroed), CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_STATUS(chunkprov_client_disconnected(&zeroed, &platform, &cfg),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_STATUS(chunkprov_client_subscribed(&zeroed), CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_STATUS(chunkprov_client_tick(&zeroed, 1), CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_STATUS(chunkprov_client_message_begin(&zeroed, &cfg, "t", 1),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_STATUS(chunkprov_client_message_data(&zeroed, &platform, &byte, 1),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_STATUS(chunkprov_client_message_end(&zeroed, &platform, &cfg, NULL),
                 CHUNKPROV_STATUS_NOT_INITIALIZED);
    CHECK_STATUS(chunkprov_client_progress(&zeroed, &h, &n), CHUNKPROV_STATUS_NOT_INITIALIZED);
    /* Nothing was written. */
    for (size_t i = 0; i < sizeof zeroed; i++) {
        CHECK_EQ(((const uint8_t *)&zeroed)[i], 0);
    }
    CHECK_EQ(sim.counts.writes + sim.counts.erases, 0);

    test_context("start: NULL platform, config, strings, callbacks");
    CHECK_STATUS(chunkprov_client_start(&client, NULL, &cfg), CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_start(&client, &platform, NULL),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    for (int which = 0; which < 3; which++) {
        config_defaults();
        if (which == 0) {
            cfg.prefix = NULL;
        } else if (which == 1) {
            cfg.client_id = NULL;
        } else {
            cfg.serial = NULL;
        }
        CHECK_STATUS(chunkprov_client_start(&client, &platform, &cfg),
                     CHUNKPROV_STATUS_NULL_ARGUMENT);
    }
    config_defaults();
    for (int which = 0; which < 4; which++) {
        chunkprov_platform q = platform;
        if (which == 0) {
            q.read = NULL;
        } else if (which == 1) {
            q.write = NULL;
        } else if (which == 2) {
            q.erase = NULL;
        } else {
            q.geometry = NULL;
        }
        CHECK_STATUS(chunkprov_client_start(&client, &q, &cfg), CHUNKPROV_STATUS_NULL_ARGUMENT);
    }

    test_context("start: invalid arguments");
    cfg.prefix = "chunk\xff";
    CHECK_STATUS(chunkprov_client_start(&client, &platform, &cfg),
                 CHUNKPROV_STATUS_INVALID_ARGUMENT);
    config_defaults();
    cfg.partition_offset = PART_OFFSET + WS;
    CHECK_STATUS(chunkprov_client_start(&client, &platform, &cfg),
                 CHUNKPROV_STATUS_INVALID_ARGUMENT);
    config_defaults();
    cfg.partition_size = 4 * PAGE; /* 2 journal pages, slots of one header page only */
    CHECK_STATUS(chunkprov_client_start(&client, &platform, &cfg),
                 CHUNKPROV_STATUS_INVALID_ARGUMENT);
    config_defaults();
    cfg.partition_offset = 3 * PAGE; /* runs past the flash */
    CHECK_STATUS(chunkprov_client_start(&client, &platform, &cfg),
                 CHUNKPROV_STATUS_INVALID_ARGUMENT);
    config_defaults();
    CHECK_EQ(sim.counts.writes + sim.counts.erases, 0);

    test_context("a started client: NULL arguments");
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    CHECK_STATUS(chunkprov_client_poll(&client, NULL, &cfg, poll_buf, sizeof poll_buf, &a),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_poll(&client, &platform, NULL, poll_buf, sizeof poll_buf, &a),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_poll(&client, &platform, &cfg, NULL, sizeof poll_buf, &a),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_poll(&client, &platform, &cfg, poll_buf, sizeof poll_buf, NULL),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    chunkprov_platform no_random = platform;
    no_random.random = NULL;
    CHECK_STATUS(
        chunkprov_client_poll(&client, &no_random, &cfg, poll_buf, sizeof poll_buf, &a),
        CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_disconnected(&client, NULL, &cfg),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_disconnected(&client, &platform, NULL),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_message_begin(&client, NULL, "t", 1),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_message_begin(&client, &cfg, NULL, 1),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_message_data(&client, NULL, &byte, 1),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_message_data(&client, &platform, NULL, 1),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_message_data(&client, &platform, NULL, 0),
                 CHUNKPROV_STATUS_OK);
    CHECK_STATUS(chunkprov_client_message_end(&client, NULL, &cfg, NULL),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_message_end(&client, &platform, NULL, NULL),
                 CHUNKPROV_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(chunkprov_client_progress(&client, NULL, NULL), CHUNKPROV_STATUS_OK);

    test_context("after the refused calls the client still provisions");
    static run r;
    run_init(&r);
    drive_to_end(&r, CHUNKPROV_ACTION_KIND_DONE);
    CHECK_EQ(cloud.requests, 1);

    test_context("window 0 and 17: GIVE_UP CONFIG");
    for (int w = 0; w < 2; w++) {
        flash_fresh();
        cloud_reset(FX_CERT_CA);
        cfg.window = w == 0 ? 0 : 17;
        CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
        run_init(&r);
        drive_to_end(&r, CHUNKPROV_ACTION_KIND_GIVE_UP);
        CHECK_EQ(r.end.give_up, CHUNKPROV_GIVE_UP_CONFIG);
        CHECK_EQ(cloud.requests, 0);
    }
    test_context("a buffer too small for the request: GIVE_UP CONFIG");
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&r);
    for (int i = 0; i < 100 && !r.finished; i++) {
        CHECK_STATUS(chunkprov_client_poll(&client, &platform, &cfg, poll_buf, 64, &a),
                     CHUNKPROV_STATUS_OK);
        CHECK_STATUS(perform(&r, &a), CHUNKPROV_STATUS_OK);
    }
    CHECK(r.finished);
    CHECK_EQ(r.end.kind, CHUNKPROV_ACTION_KIND_GIVE_UP);
    CHECK_EQ(r.end.give_up, CHUNKPROV_GIVE_UP_CONFIG);
    CHECK_EQ(cloud.requests, 0);
}

/* ============================================================ power-cut sweep */

static struct sweep {
    uint32_t total; /* write/erase operations of a clean provisioning */
    uint32_t cut;
    bool half;
    uint32_t tried, survived;
    uint32_t found[4]; /* previous, resumable, pending, confirmed */
    uint32_t resumed_requests; /* resumable after a full cut, yet asked anew */
    uint32_t reasked;          /* full cuts after which a frame held was pulled again */
} sweep;

static const char *const found_names[4] = {"previous", "resumable", "pending", "confirmed"};

/* A fresh device and stand-in for the sweep: deterministic, so operation N
 * is the same one in every run. */
static void sweep_world(void)
{
    flash_fresh();
    cloud_reset(FX_CERT_CA);
    cloud.shuffle = true;
}

/* One cut point: cut, reboot, check what the device finds, finish. */
static void sweep_point(void *unused)
{
    (void)unused;
    static run first, second;
    chunkprov_action a;
    test_context("cut %lu%s: first boot", (unsigned long)sweep.cut, sweep.half ? " half" : "");
    sweep_world();
    nor_sim_power_cut(&sim, NOR_SIM_OP_WRITE | NOR_SIM_OP_ERASE, sweep.cut, sweep.half);
    run_init(&first);
    chunkprov_status st = boot();
    if (st == CHUNKPROV_STATUS_OK) {
        st = drive(&first, 100000);
    }
    CHECK(!first.finished);
    CHECK_STATUS(st, CHUNKPROV_STATUS_FLASH_ERROR);
    CHECK(sim.powered_off);

    test_context("cut %lu%s: after power on", (unsigned long)sweep.cut, sweep.half ? " half" : "");
    nor_sim_power_on(&sim);
    uint32_t requests = cloud.requests;
    memset(cloud.pulled, 0, sizeof cloud.pulled);
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    uint16_t held = 0, count = 0;
    progress(&held, &count);
    run_init(&second);
    CHECK_STATUS(poll_once(&second, &a), CHUNKPROV_STATUS_OK);
    int found;
    switch (a.kind) {
    case CHUNKPROV_ACTION_KIND_CONNECT:
        if (a.claim) {
            found = held > 0 ? 1 : 0;
        } else {
            check_credentials(a.slot, &a.credentials, cloud.bundle);
            found = 2;
        }
        break;
    case CHUNKPROV_ACTION_KIND_DONE:
        found = 3;
        break;
    default:
        test_fail(__FILE__, __LINE__, "first action after the cut: kind %d", (int)a.kind);
    }
    CHECK_STATUS(perform(&second, &a), CHUNKPROV_STATUS_OK);
    drive_to_end(&second, CHUNKPROV_ACTION_KIND_DONE);
    CHECK_EQ(second.end.slot, 0);
    check_credentials(second.end.slot, &second.end.credentials, cloud.bundle);
    CHECK_EQ(sim.counts.violations, 0);
    sweep.found[found]++;
    /* Not required to survive, counted: after a cut that left no unit half
     * written, a resumed transfer should go on with pulls of frames it lacks. */
    if (!sweep.half && found == 1) {
        if (cloud.requests != requests) {
            sweep.resumed_requests++;
        }
        for (uint32_t i = 0; i < FRAMES_MAX_COUNT; i++) {
            if (first.took[i] && cloud.pulled[i] != 0) {
                sweep.reasked++;
                break;
            }
        }
    }
}

/* 10. A whole provisioning with power cut at every flash write/erase in turn,
 * completed and half done. */
static void power_cut_sweep(void)
{
    static run clean;
    memset(&sweep, 0, sizeof sweep);
    test_context("clean run");
    sweep_world();
    CHECK_STATUS(boot(), CHUNKPROV_STATUS_OK);
    run_init(&clean);
    drive_to_end(&clean, CHUNKPROV_ACTION_KIND_DONE);
    CHECK(cloud.xfer.plan.count >= 12);
    CHECK(cloud.frames_sent > cloud.xfer.plan.count); /* duplicates were sent */
    sweep.total = sim.counts.writes + sim.counts.erases;
    printf("    clean provisioning: %lu frames (%lu sent), %lu flash writes + %lu erases = %lu "
           "cut points; stride %d\n",
           (unsigned long)cloud.xfer.plan.count, (unsigned long)cloud.frames_sent,
           (unsigned long)sim.counts.writes, (unsigned long)sim.counts.erases,
           (unsigned long)sweep.total, CHUNKPROV_SWEEP_STRIDE);

    for (int half = 0; half < 2; half++) {
        for (uint32_t cut = 1; cut <= sweep.total; cut += CHUNKPROV_SWEEP_STRIDE) {
            sweep.cut = cut;
            sweep.half = half != 0;
            sweep.tried++;
            if (test_try(sweep_point, NULL)) {
                sweep.survived++;
            }
        }
    }
    test_context("sweep results");
    printf("power-cut sweep (C ABI): %lu cut points tried, %lu survived\n",
           (unsigned long)sweep.tried, (unsigned long)sweep.survived);
    printf("    found after the cut: %s %lu, %s %lu, %s %lu, %s %lu; full cuts with a resumable "
           "transfer that requested anew: %lu, that pulled a frame held: %lu\n",
           found_names[0], (unsigned long)sweep.found[0], found_names[1],
           (unsigned long)sweep.found[1], found_names[2], (unsigned long)sweep.found[2],
           found_names[3], (unsigned long)sweep.found[3], (unsigned long)sweep.resumed_requests,
           (unsigned long)sweep.reasked);
    CHECK_EQ(sweep.survived, sweep.tried);
    if (CHUNKPROV_SWEEP_STRIDE == 1) {
        CHECK(sweep.found[0] > 0 && sweep.found[1] > 0 && sweep.found[2] > 0);
    }
}

int main(void)
{
    static const test_case cases[] = {
        TEST_CASE(happy_path_csr_mode),
        TEST_CASE(fewest_messages),
        TEST_CASE(happy_path_key_mode),
        TEST_CASE(dropped_frames_are_pulled_again),
        TEST_CASE(reboot_mid_transfer_resumes),
        TEST_CASE(reboot_with_every_frame_held),
        TEST_CASE(lost_confirmation_answer_is_retried),
        TEST_CASE(failed_reconnects_roll_back),
        TEST_CASE(reprovisioning_is_capped),
        TEST_CASE(rejections),
        TEST_CASE(flash_errors_surface),
        TEST_CASE(null_arguments_and_unstarted_client),
        TEST_CASE(power_cut_sweep),
    };
    return test_run("test_client", cases, TEST_COUNT(cases));
}
