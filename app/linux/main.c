/*
 * chunkprov-linux: the provisioning application for embedded Linux. The same core as the Zephyr
 * app (app/core) on libmosquitto + OpenSSL, with NOR flash emulated in a file:
 *
 *   file = [ client partition: journal + slots A/B | key page: device key + CSR ]
 *
 * Exit status: 0 provisioned (credentials confirmed), 2 the client gave up, 3 stopped by
 * --stop-after-frames (a simulated power cut; run again to resume), 1 any other error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "chunkprov.h"
#include "cpa.h"
#include "cpa_keys.h"
#include "flash_file.h"
#include "keygen_openssl.h"
#include "port_mosq.h"

#define PAGE 4096u

struct options {
    const char *flash;
    const char *serial;
    const char *host;
    int claim_port, device_port;
    const char *ca, *claim_cert, *claim_key;
    const char *prefix, *claim_prefix;
    uint32_t pages, write_size;
    uint32_t packet_limit, window, timeout_ms, backoff_max_ms;
    uint32_t max_retries, max_provisions, max_confirm_attempts, max_boots;
    uint32_t stop_after_frames, piece;
    int key_mode, verbosity;
};

static void usage(FILE *to)
{
    fprintf(to,
            "usage: chunkprov-linux --flash FILE --serial S --ca PEM --claim-cert PEM --claim-key PEM\n"
            "                       [--host 127.0.0.1] [--port P | --claim-port P --device-port P]\n"
            "  --prefix chunkprov         topic prefix\n"
            "  --claim-prefix claim-      claim client-id prefix (client id = prefix + serial)\n"
            "  --key-mode                 ask the cloud for a key (default: CSR mode, own key)\n"
            "  --packet-limit 256         largest MQTT packet the device takes\n"
            "  --window 4                 frames in flight (1-16)\n"
            "  --timeout-ms 2000          wait for frames/answers before asking again\n"
            "  --backoff-max-ms 16000     longest wait between retries\n"
            "  --max-retries 3 --max-provisions 3 --max-confirm-attempts 3 --max-boots 5\n"
            "  --pages 13 --write-unit 4  flash file: 4 KB pages (the last holds the device key)\n"
            "  --piece 64                 payload bytes handed to the library per call\n"
            "  --stop-after-frames N      stop after N frames (a power cut; run again to resume)\n"
            "  -v / -q                    more / less output\n");
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno != 0 || *s == '\0' || *end != '\0' || v > UINT32_MAX) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse(int argc, char **argv, struct options *o)
{
    enum {
        O_FLASH = 256, O_SERIAL, O_HOST, O_PORT, O_CLAIM_PORT, O_DEVICE_PORT, O_CA, O_CLAIM_CERT,
        O_CLAIM_KEY, O_PREFIX, O_CLAIM_PREFIX, O_PAGES, O_WRITE_UNIT, O_PACKET_LIMIT, O_WINDOW,
        O_TIMEOUT, O_BACKOFF, O_RETRIES, O_PROVISIONS, O_CONFIRMS, O_BOOTS, O_STOP, O_PIECE,
        O_KEY_MODE, O_HELP
    };
    static const struct option longs[] = {
        {"flash", required_argument, 0, O_FLASH},
        {"serial", required_argument, 0, O_SERIAL},
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"claim-port", required_argument, 0, O_CLAIM_PORT},
        {"device-port", required_argument, 0, O_DEVICE_PORT},
        {"ca", required_argument, 0, O_CA},
        {"claim-cert", required_argument, 0, O_CLAIM_CERT},
        {"claim-key", required_argument, 0, O_CLAIM_KEY},
        {"prefix", required_argument, 0, O_PREFIX},
        {"claim-prefix", required_argument, 0, O_CLAIM_PREFIX},
        {"pages", required_argument, 0, O_PAGES},
        {"write-unit", required_argument, 0, O_WRITE_UNIT},
        {"packet-limit", required_argument, 0, O_PACKET_LIMIT},
        {"window", required_argument, 0, O_WINDOW},
        {"timeout-ms", required_argument, 0, O_TIMEOUT},
        {"backoff-max-ms", required_argument, 0, O_BACKOFF},
        {"max-retries", required_argument, 0, O_RETRIES},
        {"max-provisions", required_argument, 0, O_PROVISIONS},
        {"max-confirm-attempts", required_argument, 0, O_CONFIRMS},
        {"max-boots", required_argument, 0, O_BOOTS},
        {"stop-after-frames", required_argument, 0, O_STOP},
        {"piece", required_argument, 0, O_PIECE},
        {"key-mode", no_argument, 0, O_KEY_MODE},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    *o = (struct options){
        .host = "127.0.0.1", .claim_port = 8883, .device_port = 8883, .prefix = "chunkprov",
        .claim_prefix = "claim-", .pages = 13, .write_size = 4, .packet_limit = 256,
        .window = 4, .timeout_ms = 2000, .backoff_max_ms = 16000, .max_retries = 3,
        .max_provisions = 3, .max_confirm_attempts = 3, .max_boots = 5, .piece = 64,
        .verbosity = CPA_INF,
    };
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "vqh", longs, &idx)) != -1) {
        uint32_t v = 0;
        int bad = 0;
        switch (c) {
        case O_FLASH: o->flash = optarg; break;
        case O_SERIAL: o->serial = optarg; break;
        case O_HOST: o->host = optarg; break;
        case O_PORT:
            bad = parse_u32(optarg, &v) || v == 0 || v > 65535;
            o->claim_port = o->device_port = (int)v;
            break;
        case O_CLAIM_PORT:
            bad = parse_u32(optarg, &v) || v == 0 || v > 65535;
            o->claim_port = (int)v;
            break;
        case O_DEVICE_PORT:
            bad = parse_u32(optarg, &v) || v == 0 || v > 65535;
            o->device_port = (int)v;
            break;
        case O_CA: o->ca = optarg; break;
        case O_CLAIM_CERT: o->claim_cert = optarg; break;
        case O_CLAIM_KEY: o->claim_key = optarg; break;
        case O_PREFIX: o->prefix = optarg; break;
        case O_CLAIM_PREFIX: o->claim_prefix = optarg; break;
        case O_PAGES: bad = parse_u32(optarg, &o->pages) || o->pages < 4; break;
        case O_WRITE_UNIT: bad = parse_u32(optarg, &o->write_size); break;
        case O_PACKET_LIMIT: bad = parse_u32(optarg, &o->packet_limit); break;
        case O_WINDOW: bad = parse_u32(optarg, &o->window) || o->window > 0xFFFF; break;
        case O_TIMEOUT: bad = parse_u32(optarg, &o->timeout_ms) || o->timeout_ms == 0; break;
        case O_BACKOFF: bad = parse_u32(optarg, &o->backoff_max_ms); break;
        case O_RETRIES: bad = parse_u32(optarg, &o->max_retries) || o->max_retries > 255; break;
        case O_PROVISIONS:
            bad = parse_u32(optarg, &o->max_provisions) || o->max_provisions > 0xFFFF;
            break;
        case O_CONFIRMS:
            bad = parse_u32(optarg, &o->max_confirm_attempts) || o->max_confirm_attempts > 0xFFFF;
            break;
        case O_BOOTS: bad = parse_u32(optarg, &o->max_boots) || o->max_boots > 0xFFFF; break;
        case O_STOP: bad = parse_u32(optarg, &o->stop_after_frames); break;
        case O_PIECE: bad = parse_u32(optarg, &o->piece) || o->piece == 0; break;
        case O_KEY_MODE: o->key_mode = 1; break;
        case 'v': o->verbosity = CPA_DBG; break;
        case 'q': o->verbosity = CPA_WRN; break;
        case 'h':
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        if (bad) {
            fprintf(stderr, "chunkprov-linux: invalid value for --%s: %s\n", longs[idx].name,
                    optarg);
            return -1;
        }
    }
    if (optind != argc || !o->flash || !o->serial || !o->ca || !o->claim_cert || !o->claim_key) {
        fprintf(stderr, "chunkprov-linux: --flash, --serial, --ca, --claim-cert and --claim-key "
                        "are required\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

/* The whole file, NUL-terminated, or NULL (with the reason on stderr). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "chunkprov-linux: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *n = realloc(buf, cap);
            if (n == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = n;
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got < 4096) {
            break;
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* The library's diagnostics are one level quieter than the app's own lines. */
static int lib_verbosity;

static void lib_log(void *ctx, chunkprov_log_level level, const char *message)
{
    (void)ctx;
    if ((int)level <= lib_verbosity) {
        fprintf(stderr, "        lib   %s\n", message);
    }
}

static void lib_random(void *ctx, uint8_t *buf, uint32_t len)
{
    (void)ctx;
    for (uint32_t got = 0; got < len;) {
        ssize_t n = getrandom(buf + got, len - got, 0);
        if (n <= 0) {
            /* No randomness: a fixed nonce would break the protocol silently. */
            fprintf(stderr, "chunkprov-linux: getrandom failed: %s\n", strerror(errno));
            exit(1);
        }
        got += (uint32_t)n;
    }
}

static void span_text(const struct flash_file *f, chunkprov_span s, char *out, size_t cap)
{
    const uint8_t *p = flash_file_at(f, s.offset, s.len);
    size_t n = p != NULL && s.len < cap ? s.len : 0;
    memcpy(out, p != NULL ? (const char *)p : "", n);
    out[n] = '\0';
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse(argc, argv, &o) != 0) {
        return 1;
    }
    /* A broker that closes the connection must show up as a lost connection (an error from
     * the write), not end the process. */
    signal(SIGPIPE, SIG_IGN);
    char *ca = slurp(o.ca), *cert = slurp(o.claim_cert), *key = slurp(o.claim_key);
    if (!ca || !cert || !key) {
        return 1;
    }

    static struct flash_file flash;
    if (flash_file_open(&flash, o.flash, o.pages, PAGE, o.write_size) != 0) {
        return 1;
    }

    static struct port_mosq pm;
    struct cpa_port port;
    pm.host = o.host;
    pm.claim_port = o.claim_port;
    pm.device_port = o.device_port;
    pm.ca_pem = ca;
    pm.claim_cert_pem = cert;
    pm.claim_key_pem = key;
    pm.flash = &flash;
    pm.piece = o.piece;
    pm.verbosity = o.verbosity;
    if (port_mosq_init(&pm, &port) != 0) {
        fprintf(stderr, "chunkprov-linux: libmosquitto did not initialise\n");
        return 1;
    }

    chunkprov_platform platform = flash_file_platform(&flash);
    platform.random = lib_random;
    platform.log = lib_log;
    lib_verbosity = o.verbosity - 1;

    char client_id[CPA_CLIENT_ID_MAX + 1];
    int n = snprintf(client_id, sizeof client_id, "%s%s", o.claim_prefix, o.serial);
    if (n < 0 || (size_t)n >= sizeof client_id) {
        fprintf(stderr, "chunkprov-linux: client id longer than %u bytes\n", CPA_CLIENT_ID_MAX);
        return 1;
    }

    /* CSR mode: the device's key and CSR, made once and kept in the last page. */
    static struct cpa_keys keys;
    static uint8_t scratch[CPA_KEY_MAX];
    uint32_t key_page = (o.pages - 1) * PAGE;
    if (!o.key_mode) {
        int rc = cpa_keys_open(&platform, key_page, PAGE, o.serial, keygen_openssl, NULL, scratch,
                               sizeof scratch, &keys);
        if (rc != 0) {
            fprintf(stderr, "chunkprov-linux: device key: error %d\n", rc);
            return 1;
        }
        pm.device_key = keys.key;
        fprintf(stderr, "%s device key and CSR (CN=%s) %s flash\n",
                keys.created ? "made a" : "using the", o.serial,
                keys.created ? "and kept them in" : "from");
    }

    chunkprov_client_config cfg = {
        .prefix = o.prefix,
        .client_id = client_id,
        .serial = o.serial,
        .csr = o.key_mode ? NULL : keys.csr,
        .packet_limit = o.packet_limit,
        .window = (uint16_t)o.window,
        .max_retries = (uint8_t)o.max_retries,
        .max_provisions = (uint16_t)o.max_provisions,
        .max_confirm_attempts = (uint16_t)o.max_confirm_attempts,
        .max_boots = (uint16_t)o.max_boots,
        .timeout_ticks = o.timeout_ms,
        .backoff_max_ticks = o.backoff_max_ms,
        .partition_offset = 0,
        .partition_size = key_page,
    };
    static struct cpa app;
    static uint8_t buf[CPA_CSR_MAX + 512];
    pm.app = &app;
    if (cpa_start(&app, &platform, &cfg, &port, buf, sizeof buf) != CHUNKPROV_STATUS_OK) {
        port_mosq_cleanup(&pm);
        return 1;
    }
    app.stop_after_frames = o.stop_after_frames;
    enum cpa_end end = cpa_run(&app);
    port_mosq_cleanup(&pm);

    const struct cpa_stats *s = &app.stats;
    int status = 1;
    switch (end) {
    case CPA_DONE: {
        char thing[129], cert_id[129];
        span_text(&flash, app.outcome.creds.thing_name, thing, sizeof thing);
        span_text(&flash, app.outcome.creds.certificate_id, cert_id, sizeof cert_id);
        printf("provisioned: thing %s, certificate %s, slot %c\n", thing, cert_id,
               app.outcome.slot == 0 ? 'A' : 'B');
        status = 0;
        break;
    }
    case CPA_GAVE_UP:
        printf("gave up: reason %d, code %u\n", (int)app.outcome.give_up,
               app.outcome.reject_code);
        status = 2;
        break;
    case CPA_STOPPED:
        printf("stopped after %u frames (power cut); run again to resume\n", s->frames_held);
        status = 3;
        break;
    default:
        printf("failed: %s\n", chunkprov_status_name(app.outcome.status));
        break;
    }
    char line[256];
    cpa_format_stats(s, line, sizeof line);
    printf("messages: %s\n", line);
    printf("flash: %u pages erased, %u writes (%u bytes)\n", flash.erases, flash.writes,
           flash.bytes_written);
    flash_file_close(&flash);
    free(ca);
    free(cert);
    free(key);
    return status;
}
