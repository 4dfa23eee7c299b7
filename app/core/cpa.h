/*
 * cpa: the provisioning application core, shared by the Zephyr app (zephyr-app/) and the
 * embedded-Linux app (app/linux/). It drives the chunkprov client (chunkprov.h) over an MQTT
 * stack reached through a small port (struct cpa_port): it polls the client, performs each
 * action with the port, turns the stack's events (CONNACK, SUBACK, PUBLISH in pieces, lost
 * connection) into client calls, keeps the client's clock from the port's monotonic
 * milliseconds, names the identity to connect with, and counts and logs progress.
 *
 * Everything here is plain C11 with no heap and no threads. All cpa_* calls, the port's
 * callbacks and the event functions (cpa_on_*) run on one thread: the port delivers events
 * only from inside its own callbacks (serve, connect, subscribe, publish).
 *
 * What the current C API cannot express is worked around here, each place marked
 * "WORKAROUND (C API)"; app/README.md lists them.
 */
#ifndef CPA_H
#define CPA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkprov.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest client id AWS IoT accepts (the claim id or the thing name), without NUL. */
#define CPA_CLIENT_ID_MAX 128u

/** Log levels of cpa_port.log (the same numbers as chunkprov_log_level). */
enum cpa_level { CPA_ERR = 1, CPA_WRN = 2, CPA_INF = 3, CPA_DBG = 4 };

/** Whom to connect as. */
struct cpa_identity {
    /** true: the claim certificate and the claim client id (cfg.client_id). */
    bool claim;
    /** false: slot 0 (A) or 1 (B) of the client's partition ... */
    uint8_t slot;
    /** ... whose credentials lie in flash here (offsets as the platform callbacks address it;
     * PEM spans include their NUL). */
    chunkprov_credentials creds;
    /** The client id: the claim id, or the thing name read from flash. NUL-terminated. */
    const char *client_id;
};

/** What the MQTT stack offers the core. Return values: 0 or a negative errno. */
struct cpa_port {
    void *ctx;
    /** Open a connection (clean session, TLS with `id`'s credentials) and send CONNECT. The
     * CONNACK may come now or later, through cpa_on_connack() from inside serve(). */
    int (*connect)(void *ctx, const struct cpa_identity *id);
    /** Send SUBSCRIBE (QoS 1) for `topic`; the SUBACK comes through cpa_on_suback(). */
    int (*subscribe)(void *ctx, const char *topic);
    /** Send a QoS 1 PUBLISH. */
    int (*publish)(void *ctx, const char *topic, const uint8_t *payload, size_t len);
    /** Drop the connection, if any, and free its TLS context (there is one at a time). */
    void (*close)(void *ctx);
    /** Serve the connection for at most `max_ms` milliseconds: read what arrives, deliver it
     * through cpa_on_*(), keep the connection alive. May return early after an event. */
    int (*serve)(void *ctx, uint32_t max_ms);
    /** A monotonic clock in milliseconds (wrapping). */
    uint32_t (*now_ms)(void *ctx);
    /** One line of progress or diagnostics (NUL-terminated, valid during the call). May be
     * NULL. */
    void (*log)(void *ctx, enum cpa_level level, const char *line);
};

/** What happened during a run: the figures a provisioning is measured by. */
struct cpa_stats {
    uint32_t connects;         /**< CONNECTs sent */
    uint32_t connack_timeouts; /**< connections dropped for want of a CONNACK */
    uint32_t lost;             /**< connections refused or lost */
    uint32_t subscribes;       /**< SUBSCRIBEs sent */
    uint32_t published;        /**< PUBLISHes sent (all kinds) */
    uint32_t requests;         /**< ... of which provisioning requests */
    uint32_t pulls;            /**< ... pulls */
    uint32_t confirmations;    /**< ... confirmations */
    uint32_t received;         /**< PUBLISHes received (all) */
    uint32_t frames_held;      /**< frames newly held */
    uint32_t frames_duplicate; /**< frames that were held already */
    uint32_t frames_rejected;  /**< frames rejected */
    uint32_t payload_bytes;    /**< payload bytes handed to the library */
};

/** How a run ended. */
enum cpa_end {
    CPA_RUNNING = 0,  /**< not ended */
    CPA_DONE,         /**< provisioned: `slot`/`creds` are confirmed */
    CPA_GAVE_UP,      /**< the client gave up: `give_up`, `reject_code` */
    CPA_STOPPED,      /**< stopped after `stop_after_frames` frames (a simulated power cut) */
    CPA_FAILED,       /**< a library call failed: `status` */
};

struct cpa_outcome {
    enum cpa_end end;
    uint8_t slot;
    chunkprov_credentials creds;
    chunkprov_give_up give_up;
    uint16_t reject_code;
    chunkprov_status status;
};

enum cpa_conn { CPA_CONN_NONE = 0, CPA_CONN_PENDING, CPA_CONN_REFUSED, CPA_CONN_UP };

/** The core's state. Allocate it anywhere (the client inside needs 8-byte alignment, which a
 * struct member of this type has); touch it through cpa_* only. */
struct cpa {
    chunkprov_client client;
    const chunkprov_platform *platform;
    const chunkprov_client_config *cfg;
    const struct cpa_port *port;
    uint8_t *buf;
    size_t buf_len;
    enum cpa_conn conn;
    bool subscribing;
    bool in_message;
    uint32_t last_ms;
    /** Stop (CPA_STOPPED) once this many frames were held in this run; 0: never. */
    uint32_t stop_after_frames;
    struct cpa_stats stats;
    struct cpa_outcome outcome;
    char client_id[CPA_CLIENT_ID_MAX + 1];
};

/**
 * Starts the client over what flash holds (chunkprov_client_start()). `platform`, `cfg`,
 * `port` and `buf` (the poll buffer: CHUNKPROV's "its length plus 300" with a CSR) must
 * outlive the run. Returns the library's status.
 */
chunkprov_status cpa_start(struct cpa *a, const chunkprov_platform *platform,
                           const chunkprov_client_config *cfg, const struct cpa_port *port,
                           uint8_t *buf, size_t buf_len);

/** One step: poll the client and perform its action. Returns the run's end (CPA_RUNNING while
 * it goes on); a.outcome holds the details. */
enum cpa_end cpa_step(struct cpa *a);

/** Steps until the run ends; returns a.outcome.end. */
enum cpa_end cpa_run(struct cpa *a);

/* ---- events, delivered by the port from inside its callbacks ---- */

/** The broker answered CONNECT: `accepted` is a CONNACK return code of 0. */
void cpa_on_connack(struct cpa *a, bool accepted);
/** The broker answered SUBSCRIBE: `granted` unless its return code was 0x80 (failure). */
void cpa_on_suback(struct cpa *a, bool granted);
/** The connection was lost (or could not be completed). */
void cpa_on_disconnect(struct cpa *a);
/** A PUBLISH arrived on `topic` (`topic_len` bytes) with `payload_len` bytes of payload,
 * which follow through cpa_on_message_data() in pieces of any size, then cpa_on_message_end().
 * Returns 0, or a negative errno when the library reports a flash failure. */
int cpa_on_message_begin(struct cpa *a, const char *topic, size_t topic_len, size_t payload_len);
int cpa_on_message_data(struct cpa *a, const uint8_t *data, size_t len);
int cpa_on_message_end(struct cpa *a);

/** The run's figures as one line ("4 sent (1 requests, 2 pulls, 1 confirmations), 12 received
 * (...); 2 connects, 0 lost") into `out` (`cap` bytes, NUL-terminated, cut if too long). */
void cpa_format_stats(const struct cpa_stats *s, char *out, size_t cap);

/** Formats one line (printf-style) to the port's log. */
void cpa_logf(const struct cpa *a, enum cpa_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/** "request", "pull", "confirm", "frame", "rejected", "confirm/accepted" or "other": the kind
 * of a chunkprov topic, from its last level(s). */
const char *cpa_topic_kind(const char *topic, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* CPA_H */
