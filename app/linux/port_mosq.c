/*
 * The core's port on libmosquitto + OpenSSL (see port_mosq.h).
 */
#define _GNU_SOURCE
#include "port_mosq.h"

#include <arpa/inet.h>
#include <errno.h>
#include <mosquitto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define KEEPALIVE_S 60

static void tls_errors(const char *what)
{
    unsigned long e;
    char buf[256];
    fprintf(stderr, "tls: %s\n", what);
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
        fprintf(stderr, "  %s\n", buf);
    }
}

/* A TLS context from PEM in memory: every CA certificate in `ca`, the client certificate and
 * its key, peer verification against `host`. Read-only memory BIOs: nothing is copied before
 * OpenSSL parses it. */
static SSL_CTX *tls_context(const char *host, const char *ca, size_t ca_len, const char *cert,
                            size_t cert_len, const char *key, size_t key_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        tls_errors("SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);

    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    BIO *b = BIO_new_mem_buf(ca, (int)ca_len);
    int n = 0;
    X509 *x;
    while (b != NULL && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, x) == 1) {
            n++;
        }
        X509_free(x);
    }
    BIO_free(b);
    ERR_clear_error(); /* the end of the PEM list */
    if (n == 0) {
        tls_errors("no CA certificate");
        SSL_CTX_free(ctx);
        return NULL;
    }

    b = BIO_new_mem_buf(cert, (int)cert_len);
    x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (x == NULL || SSL_CTX_use_certificate(ctx, x) != 1) {
        X509_free(x);
        tls_errors("client certificate");
        SSL_CTX_free(ctx);
        return NULL;
    }
    X509_free(x);

    b = BIO_new_mem_buf(key, (int)key_len);
    EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (k == NULL || SSL_CTX_use_PrivateKey(ctx, k) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        EVP_PKEY_free(k);
        tls_errors("client key (or it does not match the certificate)");
        SSL_CTX_free(ctx);
        return NULL;
    }
    EVP_PKEY_free(k);

    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    unsigned char addr[16];
    int ok = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1
                 ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
                 : X509_VERIFY_PARAM_set1_host(param, host, 0);
    if (ok != 1) {
        tls_errors("peer name");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* A PEM span in flash as text: its NUL is not part of it. */
static const char *flash_pem(const struct flash_file *f, chunkprov_span s, size_t *len)
{
    const uint8_t *p = s.len > 1 ? flash_file_at(f, s.offset, s.len) : NULL;
    *len = p != NULL ? s.len - 1 : 0;
    return (const char *)p;
}

/* ---------------------------------------------------------- mosquitto callbacks */

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    struct port_mosq *pm = obj;
    if (mosq == pm->mosq) {
        cpa_on_connack(pm->app, rc == 0);
    }
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    struct port_mosq *pm = obj;
    (void)rc;
    if (mosq == pm->mosq) {
        cpa_on_disconnect(pm->app);
    }
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count,
                         const int *granted)
{
    struct port_mosq *pm = obj;
    (void)mid;
    if (mosq == pm->mosq) {
        cpa_on_suback(pm->app, qos_count >= 1 && granted[0] != 0x80);
    }
}

/* libmosquitto hands the whole payload over (and has sent the PUBACK already); the core gets
 * it in `piece`-byte reads, as an MCU's stack delivers it. */
static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    struct port_mosq *pm = obj;
    if (mosq != pm->mosq) {
        return;
    }
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    if (cpa_on_message_begin(pm->app, msg->topic, strlen(msg->topic), len) != 0) {
        return;
    }
    const uint8_t *p = msg->payload;
    size_t piece = pm->piece > 0 ? pm->piece : len;
    for (size_t at = 0; at < len; at += piece) {
        size_t n = len - at < piece ? len - at : piece;
        if (cpa_on_message_data(pm->app, p + at, n) != 0) {
            break;
        }
    }
    (void)cpa_on_message_end(pm->app);
}

/* ----------------------------------------------------------------- the port */

static void pm_close(void *ctx)
{
    struct port_mosq *pm = ctx;
    if (pm->mosq != NULL) {
        struct mosquitto *m = pm->mosq;
        pm->mosq = NULL; /* its callbacks are ignored from here on */
        mosquitto_destroy(m);
    }
    if (pm->ssl != NULL) {
        SSL_CTX_free(pm->ssl);
        pm->ssl = NULL;
    }
}

static int pm_connect(void *ctx, const struct cpa_identity *id)
{
    struct port_mosq *pm = ctx;
    pm_close(pm);

    const char *ca = pm->ca_pem, *cert = pm->claim_cert_pem, *key = pm->claim_key_pem;
    size_t ca_len = strlen(ca), cert_len = strlen(cert), key_len = strlen(key);
    int port = pm->claim_port;
    if (!id->claim) {
        /* The new credentials, straight from the mapped flash. */
        cert = flash_pem(pm->flash, id->creds.certificate, &cert_len);
        chunkprov_span k = pm->device_key.len > 0 ? pm->device_key : id->creds.private_key;
        key = flash_pem(pm->flash, k, &key_len);
        if (id->creds.server_ca.len > 0) {
            ca = flash_pem(pm->flash, id->creds.server_ca, &ca_len);
        }
        port = pm->device_port;
        if (cert == NULL || key == NULL || ca == NULL) {
            fprintf(stderr, "port: credentials of slot %u missing in flash\n", id->slot);
            return -EINVAL;
        }
    }
    pm->ssl = tls_context(pm->host, ca, ca_len, cert, cert_len, key, key_len);
    if (pm->ssl == NULL) {
        return -EPROTO;
    }
    pm->mosq = mosquitto_new(id->client_id, true, pm);
    if (pm->mosq == NULL) {
        return -ENOMEM;
    }
    mosquitto_connect_callback_set(pm->mosq, on_connect);
    mosquitto_disconnect_callback_set(pm->mosq, on_disconnect);
    mosquitto_subscribe_callback_set(pm->mosq, on_subscribe);
    mosquitto_message_callback_set(pm->mosq, on_message);
    int rc = mosquitto_int_option(pm->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    if (rc == MOSQ_ERR_SUCCESS) {
        rc = mosquitto_int_option(pm->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
    }
    if (rc == MOSQ_ERR_SUCCESS) {
        rc = mosquitto_void_option(pm->mosq, MOSQ_OPT_SSL_CTX, pm->ssl);
    }
    if (rc == MOSQ_ERR_SUCCESS) {
        /* TCP and the TLS handshake happen here; the CONNACK comes later, in serve(). */
        rc = mosquitto_connect(pm->mosq, pm->host, port, KEEPALIVE_S);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "port: connecting to %s:%d: %s\n", pm->host, port,
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        return -ECONNREFUSED;
    }
    return 0;
}

static int pm_subscribe(void *ctx, const char *topic)
{
    struct port_mosq *pm = ctx;
    if (pm->mosq == NULL) {
        return -ENOTCONN;
    }
    return mosquitto_subscribe(pm->mosq, NULL, topic, 1) == MOSQ_ERR_SUCCESS ? 0 : -EIO;
}

static int pm_publish(void *ctx, const char *topic, const uint8_t *payload, size_t len)
{
    struct port_mosq *pm = ctx;
    if (pm->mosq == NULL || len > INT32_MAX) {
        return -ENOTCONN;
    }
    int rc = mosquitto_publish(pm->mosq, NULL, topic, (int)len, payload, 1, false);
    return rc == MOSQ_ERR_SUCCESS ? 0 : -EIO;
}

static int pm_serve(void *ctx, uint32_t max_ms)
{
    struct port_mosq *pm = ctx;
    int ms = max_ms > INT32_MAX ? INT32_MAX : (int)max_ms;
    if (pm->mosq == NULL) {
        (void)poll(NULL, 0, ms);
        return 0;
    }
    int rc = mosquitto_loop(pm->mosq, ms, 1);
    if (rc == MOSQ_ERR_SUCCESS) {
        return 0;
    }
    if (pm->mosq != NULL) {
        fprintf(stderr, "port: %s\n", mosquitto_strerror(rc));
    }
    return -ECONNRESET;
}

static uint32_t pm_now_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static void pm_log(void *ctx, enum cpa_level level, const char *line)
{
    struct port_mosq *pm = ctx;
    static const char *const names[] = {"?", "error", "warn", "info", "debug"};
    if ((int)level > pm->verbosity) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    fprintf(stderr, "[%5lld.%03ld] %-5s %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000L,
            names[(unsigned)level < 5 ? level : 0], line);
}

int port_mosq_init(struct port_mosq *pm, struct cpa_port *port)
{
    if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
        return -EIO;
    }
    memset(port, 0, sizeof *port);
    port->ctx = pm;
    port->connect = pm_connect;
    port->subscribe = pm_subscribe;
    port->publish = pm_publish;
    port->close = pm_close;
    port->serve = pm_serve;
    port->now_ms = pm_now_ms;
    port->log = pm_log;
    return 0;
}

void port_mosq_cleanup(struct port_mosq *pm)
{
    pm_close(pm);
    mosquitto_lib_cleanup();
}
