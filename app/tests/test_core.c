/*
 * The application core (app/core/cpa.c) driving the real library over a scripted port.
 *
 * The port here is a STAND-IN for an asynchronous MQTT stack and, behind it, for the cloud: it
 * runs on a virtual clock, answers CONNECT and SUBSCRIBE later (or never, or with a refusal),
 * delivers PUBLISHes in 7-byte pieces on subscribed topics only, keeps clean sessions, and
 * answers a request with the first window of frames, a pull with the frames it lists and a
 * confirmation with its CBOR answer, the frames made by the C tests' own encoder
 * (tests/c/frames.c, itself a stand-in for the cloud's). The real stacks (Zephyr's MQTT client,
 * libmosquitto) and the real cloud are exercised by running the apps against the local stack.
 *
 * Flash is the Linux app's NOR-in-a-file (flash_file.c), so it is exercised too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cpa.h"
#include "flash_file.h"
#include "frames.h"

CHECK_STATE;

#define PREFIX "chunkprov"
#define SERIAL "352656100000031"
#define CLIENT_ID "claim-" SERIAL
#define THING "dev-" SERIAL
#define CERT_ID "c0ffee0123456789c0ffee0123456789c0ffee0123456789c0ffee0123456789"
#define TID 7u
#define WINDOW 4u
#define TIMEOUT 1000u
#define PIECE 7u
#define PAGE 4096u
#define PAGES 13u

/* ------------------------------------------------- the stand-in stack + cloud */

enum ev_kind { EV_CONNACK, EV_SUBACK, EV_MSG, EV_DROP };

struct event {
    uint32_t at;
    enum ev_kind kind;
    bool ok;
    char topic[96];
    uint8_t payload[320];
    uint32_t len;
};

#define MAX_EVENTS 64u

static struct sim {
    struct cpa *app;
    uint32_t now;
    struct event ev[MAX_EVENTS];
    uint32_t n_ev;
    bool open;
    char client_id[CPA_CLIENT_ID_MAX + 1];
    char subs[4][96];
    uint32_t n_subs;

    /* knobs */
    uint32_t connack_delay, suback_delay, msg_delay;
    uint32_t connack_silent, connack_refuse, suback_refuse, drop_after_request;
    uint32_t reject_code;

    /* what happened */
    uint32_t connects, closes, requests, pulls, confirmations, frames_sent;
    uint32_t connect_at[8];
    char ids[8][CPA_CLIENT_ID_MAX + 1];

    /* the cloud */
    uint8_t bundle[4096];
    uint32_t bundle_len;
    frames_layout layout;
    frames_transfer xfer;
    bool have_xfer;
} sim;

static char cert_pem[1024], ca_pem[1024];

static void sim_reset(void)
{
    memset(&sim, 0, sizeof sim);
    sim.connack_delay = 300;
    sim.suback_delay = 50;
    sim.msg_delay = 20;
    CHECK(frames_pem(cert_pem, sizeof cert_pem, "CERTIFICATE", 700, 1) > 0);
    CHECK(frames_pem(ca_pem, sizeof ca_pem, "CERTIFICATE", 560, 2) > 0);
    frames_bundle b = {
        .thing_name = THING,
        .certificate_id = CERT_ID,
        .certificate_pem = cert_pem,
        .private_key_pem = NULL,
        .server_ca_pem = ca_pem,
    };
    sim.bundle_len = (uint32_t)frames_bundle_encode(&b, sim.bundle, sizeof sim.bundle, &sim.layout);
    CHECK(sim.bundle_len > 0);
}

static struct event *schedule(uint32_t delay, enum ev_kind kind)
{
    CHECK(sim.n_ev < MAX_EVENTS);
    struct event *e = &sim.ev[sim.n_ev++];
    memset(e, 0, sizeof *e);
    e->at = sim.now + delay;
    e->kind = kind;
    e->ok = true;
    return e;
}

static void drop_events(void)
{
    sim.n_ev = 0;
}

static bool subscribed(const char *topic)
{
    for (uint32_t i = 0; i < sim.n_subs; i++) {
        if (strcmp(sim.subs[i], topic) == 0) {
            return true;
        }
    }
    return false;
}

/* Bytes of a QoS 1 PUBLISH of `payload` bytes on a `topic`-byte topic. */
static uint32_t packet_len(uint32_t topic, uint32_t payload)
{
    uint32_t r = 2 + topic + 2 + payload;
    return 1 + (r < 128 ? 1 : 2) + r;
}

static void send_frame(uint32_t i, uint32_t k)
{
    struct event *e = schedule(sim.msg_delay * (k + 1), EV_MSG);
    snprintf(e->topic, sizeof e->topic, PREFIX "/%s/frame", CLIENT_ID);
    size_t n = frames_transfer_frame(&sim.xfer, i, e->payload, sizeof e->payload);
    CHECK(n > 0);
    e->len = (uint32_t)n;
    CHECK(packet_len((uint32_t)strlen(e->topic), e->len) <= 256);
    sim.frames_sent++;
}

static bool hex_nonce(const char *json, uint8_t nonce[CHUNKPROV_NONCE_LEN])
{
    const char *p = strstr(json, "\"Nonce\":\"");
    if (p == NULL) {
        return false;
    }
    p += strlen("\"Nonce\":\"");
    for (int i = 0; i < CHUNKPROV_NONCE_LEN; i++) {
        unsigned v;
        if (sscanf(p + 2 * i, "%2x", &v) != 1) {
            return false;
        }
        nonce[i] = (uint8_t)v;
    }
    return true;
}

/* The cloud's answer to a publish. */
static void cloud(const char *topic, const uint8_t *payload, size_t len)
{
    char json[1024];
    CHECK(len < sizeof json);
    memcpy(json, payload, len);
    json[len] = '\0';
    const char *kind = cpa_topic_kind(topic, strlen(topic));
    if (strcmp(kind, "request") == 0) {
        sim.requests++;
        if (sim.drop_after_request > 0) {
            sim.drop_after_request--;
            schedule(5, EV_DROP);
            return;
        }
        uint8_t nonce[CHUNKPROV_NONCE_LEN];
        CHECK(hex_nonce(json, nonce));
        if (sim.reject_code != 0) {
            struct event *e = schedule(sim.msg_delay, EV_MSG);
            snprintf(e->topic, sizeof e->topic, PREFIX "/%s/rejected", CLIENT_ID);
            uint8_t *p = e->payload;
            *p++ = 0x83;
            *p++ = CBOR_NULL;
            p += cbor_head(CBOR_MAJOR_UINT, sim.reject_code, p);
            p += cbor_head(CBOR_MAJOR_TEXT, 1, p);
            *p++ = 'x';
            e->len = (uint32_t)(p - e->payload);
            return;
        }
        /* The largest chunk whose frame fits 256-byte packets on the frame topic. */
        uint32_t topic_len = (uint32_t)strlen(PREFIX "/" CLIENT_ID "/frame");
        uint32_t chunk = 256 / FRAMES_ALIGN * FRAMES_ALIGN;
        while (packet_len(topic_len, FRAMES_HEADER_MAX + chunk) > 256) {
            chunk -= FRAMES_ALIGN;
        }
        CHECK(frames_transfer_init(&sim.xfer, sim.bundle, sim.bundle_len, chunk, nonce, TID));
        sim.have_xfer = true;
        for (uint32_t i = 0; i < WINDOW && i < sim.xfer.plan.count; i++) {
            send_frame(i, i);
        }
    } else if (strcmp(kind, "pull") == 0) {
        sim.pulls++;
        CHECK(sim.have_xfer);
        const char *m = strstr(json, "\"Missing\":[");
        CHECK(m != NULL);
        m += strlen("\"Missing\":[");
        uint32_t k = 0;
        while (*m != ']') {
            char *end;
            unsigned long i = strtoul(m, &end, 10);
            CHECK(end != m && i < sim.xfer.plan.count);
            send_frame((uint32_t)i, k++);
            m = *end == ',' ? end + 1 : end;
        }
    } else if (strcmp(kind, "confirm") == 0) {
        sim.confirmations++;
        struct event *e = schedule(sim.msg_delay, EV_MSG);
        snprintf(e->topic, sizeof e->topic, PREFIX "/%s/confirm/accepted", THING);
        uint8_t *p = e->payload;
        *p++ = 0x82;
        p += cbor_head(CBOR_MAJOR_UINT, TID, p);
        p += cbor_head(CBOR_MAJOR_TEXT, strlen(CERT_ID), p);
        memcpy(p, CERT_ID, strlen(CERT_ID));
        p += strlen(CERT_ID);
        e->len = (uint32_t)(p - e->payload);
    }
}

static int s_connect(void *ctx, const struct cpa_identity *id)
{
    (void)ctx;
    CHECK(!sim.open);
    if (sim.connects < 8) {
        sim.connect_at[sim.connects] = sim.now;
        snprintf(sim.ids[sim.connects], sizeof sim.ids[0], "%s", id->client_id);
    }
    sim.connects++;
    snprintf(sim.client_id, sizeof sim.client_id, "%s", id->client_id);
    sim.open = true;
    sim.n_subs = 0; /* clean session */
    drop_events();
    if (sim.connack_silent > 0) {
        sim.connack_silent--;
        return 0;
    }
    struct event *e = schedule(sim.connack_delay, EV_CONNACK);
    if (sim.connack_refuse > 0) {
        sim.connack_refuse--;
        e->ok = false;
    }
    return 0;
}

static int s_subscribe(void *ctx, const char *topic)
{
    (void)ctx;
    CHECK(sim.open);
    struct event *e = schedule(sim.suback_delay, EV_SUBACK);
    snprintf(e->topic, sizeof e->topic, "%s", topic);
    if (sim.suback_refuse > 0) {
        sim.suback_refuse--;
        e->ok = false;
    }
    return 0;
}

static int s_publish(void *ctx, const char *topic, const uint8_t *payload, size_t len)
{
    (void)ctx;
    CHECK(sim.open);
    cloud(topic, payload, len);
    return 0;
}

static void s_close(void *ctx)
{
    (void)ctx;
    if (sim.open) {
        sim.closes++;
    }
    sim.open = false;
    drop_events();
}

static void deliver(const struct event *e)
{
    if (!subscribed(e->topic)) {
        return;
    }
    CHECK_EQ(cpa_on_message_begin(sim.app, e->topic, strlen(e->topic), e->len), 0);
    for (uint32_t at = 0; at < e->len; at += PIECE) {
        uint32_t n = e->len - at < PIECE ? e->len - at : PIECE;
        CHECK_EQ(cpa_on_message_data(sim.app, e->payload + at, n), 0);
    }
    CHECK_EQ(cpa_on_message_end(sim.app), 0);
}

/* Delivers the earliest event due within `max_ms`, or lets the time pass. */
static int s_serve(void *ctx, uint32_t max_ms)
{
    (void)ctx;
    uint32_t deadline = sim.now + max_ms;
    uint32_t best = MAX_EVENTS;
    for (uint32_t i = 0; i < sim.n_ev; i++) {
        if (sim.ev[i].at <= deadline && (best == MAX_EVENTS || sim.ev[i].at < sim.ev[best].at)) {
            best = i;
        }
    }
    if (best == MAX_EVENTS) {
        sim.now = deadline;
        return 0;
    }
    struct event e = sim.ev[best];
    sim.ev[best] = sim.ev[--sim.n_ev];
    if (e.at > sim.now) {
        sim.now = e.at;
    }
    switch (e.kind) {
    case EV_CONNACK:
        cpa_on_connack(sim.app, e.ok);
        break;
    case EV_SUBACK:
        if (e.ok && sim.n_subs < 4) {
            snprintf(sim.subs[sim.n_subs++], sizeof sim.subs[0], "%s", e.topic);
        }
        cpa_on_suback(sim.app, e.ok);
        break;
    case EV_MSG:
        deliver(&e);
        break;
    case EV_DROP:
        sim.open = false;
        drop_events();
        cpa_on_disconnect(sim.app);
        return -ECONNRESET;
    }
    return 0;
}

static uint32_t s_now(void *ctx)
{
    (void)ctx;
    return sim.now;
}

static const struct cpa_port port = {
    .ctx = NULL,
    .connect = s_connect,
    .subscribe = s_subscribe,
    .publish = s_publish,
    .close = s_close,
    .serve = s_serve,
    .now_ms = s_now,
    .log = NULL,
};

/* ------------------------------------------------------------------ device */

static char flash_path[64];
static struct flash_file flash;
static chunkprov_platform platform;
static chunkprov_client_config cfg;
static struct cpa app;
static uint8_t buf[1536];
static uint32_t rng = 0x2545F491u;

static void random_cb(void *ctx, uint8_t *out, uint32_t len)
{
    (void)ctx;
    for (uint32_t i = 0; i < len; i++) {
        rng = rng * 1103515245u + 12345u;
        out[i] = (uint8_t)(rng >> 16);
    }
}

/* A fresh device: erased flash, default configuration. */
static void device_fresh(void)
{
    snprintf(flash_path, sizeof flash_path, "/tmp/cpa-test-%d.flash", (int)getpid());
    unlink(flash_path);
    CHECK_EQ(flash_file_open(&flash, flash_path, PAGES, PAGE, 4), 0);
    platform = flash_file_platform(&flash);
    platform.random = random_cb;
    memset(&cfg, 0, sizeof cfg);
    cfg.prefix = PREFIX;
    cfg.client_id = CLIENT_ID;
    cfg.serial = SERIAL;
    cfg.csr = "MIIBstand-in-csr-base64url";
    cfg.packet_limit = 256;
    cfg.window = WINDOW;
    cfg.max_retries = 3;
    cfg.max_provisions = 3;
    cfg.max_confirm_attempts = 3;
    cfg.max_boots = 5;
    cfg.timeout_ticks = TIMEOUT;
    cfg.backoff_max_ticks = 8 * TIMEOUT;
    cfg.partition_offset = 0;
    cfg.partition_size = (PAGES - 1) * PAGE;
}

static void device_close(void)
{
    flash_file_close(&flash);
    unlink(flash_path);
}

/* A boot and a run until the core ends. */
static enum cpa_end boot_and_run(uint32_t stop_after_frames)
{
    sim.app = &app;
    CHECK_EQ(cpa_start(&app, &platform, &cfg, &port, buf, sizeof buf), CHUNKPROV_STATUS_OK);
    app.stop_after_frames = stop_after_frames;
    /* A bound on steps: a loop that never ends fails the case instead of hanging. */
    for (int i = 0; i < 10000; i++) {
        enum cpa_end e = cpa_step(&app);
        if (e != CPA_RUNNING) {
            return e;
        }
    }
    CHECK(!"the run did not end");
    return CPA_FAILED;
}

/* The confirmed credentials are the bundle's, byte for byte, in flash. */
static void check_provisioned(void)
{
    CHECK_EQ(app.outcome.end, CPA_DONE);
    const chunkprov_credentials *c = &app.outcome.creds;
    CHECK_EQ(c->certificate.len, strlen(cert_pem) + 1);
    const uint8_t *p = flash_file_at(&flash, c->certificate.offset, c->certificate.len);
    CHECK(p != NULL);
    CHECK(memcmp(p, cert_pem, c->certificate.len) == 0);
    CHECK_EQ(c->thing_name.len, strlen(THING));
    p = flash_file_at(&flash, c->thing_name.offset, c->thing_name.len);
    CHECK(p != NULL && memcmp(p, THING, strlen(THING)) == 0);
}

static uint32_t windows(void)
{
    return (sim.xfer.plan.count + WINDOW - 1) / WINDOW;
}

/* ------------------------------------------------------------------- cases */

/* CONNACK and SUBACKs arrive late (after the next poll would have been made): one CONNECT per
 * identity, no timeout, the fewest messages. */
static void late_connack_and_suback(void)
{
    sim_reset();
    device_fresh();
    CHECK_EQ(boot_and_run(0), CPA_DONE);
    check_provisioned();
    CHECK_EQ(sim.connects, 2);
    CHECK(strcmp(sim.ids[0], CLIENT_ID) == 0);
    CHECK(strcmp(sim.ids[1], THING) == 0); /* the thing name, read from flash */
    CHECK_EQ(app.stats.connack_timeouts, 0);
    CHECK_EQ(app.stats.lost, 0);
    CHECK_EQ(sim.requests, 1);
    CHECK_EQ(sim.pulls, windows() - 1);
    CHECK_EQ(sim.confirmations, 1);
    CHECK_EQ(app.stats.published, 1 + (windows() - 1) + 1);
    CHECK_EQ(app.stats.frames_held, sim.xfer.plan.count);
    CHECK_EQ(app.stats.subscribes, 3);
    device_close();
}

/* No CONNACK at all: the connection is dropped after the timeout and made again. */
static void silent_connack(void)
{
    sim_reset();
    sim.connack_silent = 1;
    device_fresh();
    CHECK_EQ(boot_and_run(0), CPA_DONE);
    check_provisioned();
    CHECK_EQ(app.stats.connack_timeouts, 1);
    CHECK_EQ(sim.connects, 3);
    CHECK(sim.connect_at[1] - sim.connect_at[0] >= TIMEOUT);
    device_close();
}

/* A refused CONNACK: closed, and connected again after a wait. */
static void refused_connack(void)
{
    sim_reset();
    sim.connack_refuse = 1;
    device_fresh();
    CHECK_EQ(boot_and_run(0), CPA_DONE);
    check_provisioned();
    CHECK_EQ(app.stats.lost, 1);
    CHECK_EQ(sim.connects, 3);
    CHECK(sim.closes >= 1);
    device_close();
}

/* A refused subscription: the connection is dropped and made again; nothing is published on
 * the connection whose subscription failed. */
static void refused_suback(void)
{
    sim_reset();
    sim.suback_refuse = 1;
    device_fresh();
    CHECK_EQ(boot_and_run(0), CPA_DONE);
    check_provisioned();
    CHECK_EQ(app.stats.lost, 1);
    CHECK_EQ(sim.connects, 3);
    CHECK_EQ(sim.requests, 1);
    device_close();
}

/* The broker drops the connection right after the request: reconnect, provision. */
static void dropped_after_request(void)
{
    sim_reset();
    sim.drop_after_request = 1;
    device_fresh();
    CHECK_EQ(boot_and_run(0), CPA_DONE);
    check_provisioned();
    CHECK_EQ(app.stats.lost, 1);
    CHECK(sim.requests >= 2);
    device_close();
}

/* Stopped (a power cut) after 3 frames; the next boot pulls only what is missing. */
static void stopped_and_resumed(void)
{
    sim_reset();
    device_fresh();
    CHECK_EQ(boot_and_run(3), CPA_STOPPED);
    CHECK_EQ(app.stats.frames_held, 3);
    uint32_t sent = sim.frames_sent, requests = sim.requests;
    s_close(NULL);
    CHECK_EQ(boot_and_run(0), CPA_DONE);
    check_provisioned();
    CHECK_EQ(sim.requests, requests);          /* resumed: no new request */
    CHECK_EQ(app.stats.frames_held, sim.xfer.plan.count - 3);
    CHECK(sim.frames_sent - sent <= sim.xfer.plan.count - 3 + WINDOW);
    device_close();
}

/* A final rejection with the null nonce ends the run. */
static void rejected(void)
{
    sim_reset();
    sim.reject_code = 3; /* ClientIdNotClaim: not retryable */
    device_fresh();
    CHECK_EQ(boot_and_run(0), CPA_GAVE_UP);
    CHECK_EQ(app.outcome.give_up, CHUNKPROV_GIVE_UP_REJECTED);
    CHECK_EQ(app.outcome.reject_code, 3);
    CHECK_EQ(sim.requests, 1);
    device_close();
}

/* Events the core did not ask for are ignored. */
static void stray_events(void)
{
    sim_reset();
    device_fresh();
    sim.app = &app;
    CHECK_EQ(cpa_start(&app, &platform, &cfg, &port, buf, sizeof buf), CHUNKPROV_STATUS_OK);
    cpa_on_connack(&app, true);   /* no CONNECT was sent */
    cpa_on_suback(&app, true);    /* no SUBSCRIBE */
    cpa_on_disconnect(&app);      /* no connection */
    CHECK_EQ(cpa_on_message_data(&app, (const uint8_t *)"x", 1), -EINVAL);
    CHECK_EQ(cpa_on_message_end(&app), -EINVAL);
    CHECK_EQ(app.stats.lost, 0);
    CHECK_EQ(app.conn, CPA_CONN_NONE);
    CHECK_EQ(boot_and_run(0), CPA_DONE);
    CHECK_EQ(sim.connects, 2);
    device_close();
}

int main(void)
{
    RUN(late_connack_and_suback);
    RUN(silent_connack);
    RUN(refused_connack);
    RUN(refused_suback);
    RUN(dropped_after_request);
    RUN(stopped_and_resumed);
    RUN(rejected);
    RUN(stray_events);
    CHECK_MAIN_END();
}
