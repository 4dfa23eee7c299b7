/*
 * The core's port (struct cpa_port) on libmosquitto with OpenSSL: one connection at a time,
 * clean session, QoS 1, TLS with client certificates from memory (the claim files read at start,
 * the new credentials straight from the mapped flash file).
 */
#ifndef PORT_MOSQ_H
#define PORT_MOSQ_H

#include <stddef.h>
#include <stdint.h>

#include "cpa.h"
#include "cpa_keys.h"
#include "flash_file.h"

struct mosquitto;
typedef struct ssl_ctx_st SSL_CTX;

struct port_mosq {
    /* Where to connect. */
    const char *host;
    int claim_port;
    int device_port;
    /* PEM text, NUL-terminated: the server CA, the claim certificate and its key. */
    const char *ca_pem;
    const char *claim_cert_pem;
    const char *claim_key_pem;
    /* The flash the new credentials are in, and the device's own key (CSR mode; len 0: the
     * bundle's key is used). */
    const struct flash_file *flash;
    chunkprov_span device_key;
    /* Payload is handed to the core in pieces of this many bytes (as an MCU stack reads it). */
    size_t piece;
    /* Log every line at this level or more important. */
    int verbosity;

    struct cpa *app;
    struct mosquitto *mosq;
    SSL_CTX *ssl;
};

/* Initialises libmosquitto and fills `port` with the callbacks over `pm`. */
int port_mosq_init(struct port_mosq *pm, struct cpa_port *port);
void port_mosq_cleanup(struct port_mosq *pm);

#endif /* PORT_MOSQ_H */
