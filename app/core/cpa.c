/*
 * cpa: the provisioning application core (see cpa.h).
 */
#include "cpa.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ helpers */

void cpa_logf(const struct cpa *a, enum cpa_level level, const char *fmt, ...)
{
    if (a->port == NULL || a->port->log == NULL) {
        return;
    }
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    a->port->log(a->port->ctx, level, line);
}

void cpa_format_stats(const struct cpa_stats *s, char *out, size_t cap)
{
    (void)snprintf(out, cap,
                   "%u sent (%u requests, %u pulls, %u confirmations), %u received (%u frames "
                   "held, %u duplicates, %u rejected); %u connects, %u lost",
                   (unsigned)s->published, (unsigned)s->requests, (unsigned)s->pulls,
                   (unsigned)s->confirmations, (unsigned)s->received, (unsigned)s->frames_held,
                   (unsigned)s->frames_duplicate, (unsigned)s->frames_rejected,
                   (unsigned)s->connects, (unsigned)s->lost);
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

const char *cpa_topic_kind(const char *topic, size_t len)
{
    static const char *const kinds[] = {"/confirm/accepted", "/confirm", "/json", "/pull",
                                        "/frame", "/rejected"};
    static const char *const names[] = {"confirm/accepted", "confirm", "request", "pull",
                                        "frame", "rejected"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (ends_with(topic, len, kinds[i])) {
            return names[i];
        }
    }
    return "other";
}

static void fail(struct cpa *a, const char *what, chunkprov_status st)
{
    if (a->outcome.end == CPA_RUNNING) {
        a->outcome.end = CPA_FAILED;
        a->outcome.status = st;
    }
    cpa_logf(a, CPA_ERR, "%s: %s", what, chunkprov_status_name((uint32_t)st));
}

/* Reports the milliseconds that passed since the last call to the client. */
static void clock_tick(struct cpa *a)
{
    uint32_t now = a->port->now_ms(a->port->ctx);
    uint32_t elapsed = now - a->last_ms;
    a->last_ms = now;
    if (elapsed > 0) {
        (void)chunkprov_client_tick(&a->client, elapsed);
    }
}

/* The connection is gone (refused, lost, or dropped by us): tell the client. */
static void lost(struct cpa *a)
{
    a->conn = CPA_CONN_NONE;
    a->subscribing = false;
    a->stats.lost++;
    chunkprov_status st = chunkprov_client_disconnected(&a->client, a->platform, a->cfg);
    if (st != CHUNKPROV_STATUS_OK) {
        fail(a, "chunkprov_client_disconnected", st);
    }
}

/* Drops the connection ourselves, then tells the client. */
static void drop(struct cpa *a, const char *why)
{
    cpa_logf(a, CPA_WRN, "dropping the connection: %s", why);
    a->port->close(a->port->ctx);
    lost(a);
}

/* Serves the network for up to `ms`, then acts on what the events left to do. */
static void serve(struct cpa *a, uint32_t ms)
{
    int rc = a->port->serve(a->port->ctx, ms);
    clock_tick(a);
    if (a->conn == CPA_CONN_REFUSED) {
        drop(a, "refused by the broker");
    } else if (rc < 0 && a->conn != CPA_CONN_NONE) {
        cpa_logf(a, CPA_WRN, "connection lost (%d)", rc);
        a->port->close(a->port->ctx);
        lost(a);
    }
}

/* --------------------------------------------------------------- events */

void cpa_on_connack(struct cpa *a, bool accepted)
{
    if (a->conn != CPA_CONN_PENDING) {
        return;
    }
    if (accepted) {
        a->conn = CPA_CONN_UP;
        (void)chunkprov_client_connected(&a->client);
        cpa_logf(a, CPA_INF, "connected as %s", a->client_id);
    } else {
        /* Closed after the port's callback returns (serve()). */
        a->conn = CPA_CONN_REFUSED;
    }
}

void cpa_on_suback(struct cpa *a, bool granted)
{
    if (!a->subscribing || a->conn != CPA_CONN_UP) {
        return;
    }
    a->subscribing = false;
    if (granted) {
        (void)chunkprov_client_subscribed(&a->client);
    } else {
        /* WORKAROUND (C API): there is no call for a refused subscription; a lost connection
         * is the only failure the client takes. Dropped after the port's callback returns. */
        cpa_logf(a, CPA_WRN, "subscription refused (SUBACK 0x80)");
        a->conn = CPA_CONN_REFUSED;
    }
}

void cpa_on_disconnect(struct cpa *a)
{
    if (a->conn == CPA_CONN_NONE) {
        return;
    }
    cpa_logf(a, CPA_WRN, "disconnected by the broker or the network");
    lost(a);
}

int cpa_on_message_begin(struct cpa *a, const char *topic, size_t topic_len, size_t payload_len)
{
    a->stats.received++;
    a->in_message = true;
    cpa_logf(a, CPA_DBG, "message on %.*s (%u bytes)", (int)topic_len, topic,
             (unsigned)payload_len);
    chunkprov_status st = chunkprov_client_message_begin(&a->client, a->cfg, topic, topic_len);
    if (st != CHUNKPROV_STATUS_OK) {
        fail(a, "chunkprov_client_message_begin", st);
        return -EINVAL;
    }
    return 0;
}

int cpa_on_message_data(struct cpa *a, const uint8_t *data, size_t len)
{
    if (!a->in_message) {
        return -EINVAL;
    }
    a->stats.payload_bytes += (uint32_t)len;
    chunkprov_status st = chunkprov_client_message_data(&a->client, a->platform, data, len);
    if (st == CHUNKPROV_STATUS_FLASH_ERROR) {
        fail(a, "chunkprov_client_message_data", st);
        return -EIO;
    }
    return 0;
}

static void note(struct cpa *a, const chunkprov_notice *n)
{
    switch (n->kind) {
    case CHUNKPROV_NOTICE_KIND_FRAME_HELD:
        a->stats.frames_held++;
        cpa_logf(a, CPA_INF, "frame %u held (%u of %u)", n->index, n->held, n->count);
        break;
    case CHUNKPROV_NOTICE_KIND_FRAME_DUPLICATE:
        a->stats.frames_duplicate++;
        cpa_logf(a, CPA_DBG, "frame %u already held", n->index);
        break;
    case CHUNKPROV_NOTICE_KIND_FRAME_REJECTED:
        a->stats.frames_rejected++;
        cpa_logf(a, CPA_WRN, "frame %s%u rejected: %s", n->has_index ? "" : "(index unknown) ",
                 n->index, chunkprov_status_name(n->code));
        break;
    case CHUNKPROV_NOTICE_KIND_COMMITTED:
        a->stats.frames_held++;
        cpa_logf(a, CPA_INF, "bundle complete, SHA-256 verified from flash, committed");
        break;
    case CHUNKPROV_NOTICE_KIND_REJECTED:
        cpa_logf(a, CPA_WRN, "the cloud rejected the request: code %u", n->code);
        break;
    case CHUNKPROV_NOTICE_KIND_CONFIRMED:
        cpa_logf(a, CPA_INF, "confirmation answered: new credentials confirmed");
        break;
    case CHUNKPROV_NOTICE_KIND_IGNORED:
    default:
        cpa_logf(a, CPA_DBG, "message ignored");
        break;
    }
}

int cpa_on_message_end(struct cpa *a)
{
    if (!a->in_message) {
        return -EINVAL;
    }
    a->in_message = false;
    chunkprov_notice n;
    memset(&n, 0, sizeof n);
    chunkprov_status st = chunkprov_client_message_end(&a->client, a->platform, a->cfg, &n);
    if (st != CHUNKPROV_STATUS_OK) {
        fail(a, "chunkprov_client_message_end", st);
        return -EIO;
    }
    note(a, &n);
    if (a->stop_after_frames != 0 && a->stats.frames_held >= a->stop_after_frames &&
        a->outcome.end == CPA_RUNNING) {
        a->outcome.end = CPA_STOPPED;
    }
    return 0;
}

/* ---------------------------------------------------------------- actions */

/* Fills the identity for a CONNECT/ROLLED_BACK action. */
static int identity(struct cpa *a, const chunkprov_action *act, struct cpa_identity *id)
{
    memset(id, 0, sizeof *id);
    id->claim = act->claim;
    id->slot = act->slot;
    id->creds = act->credentials;
    if (act->claim) {
        size_t n = strlen(a->cfg->client_id);
        if (n > CPA_CLIENT_ID_MAX) {
            return -EINVAL;
        }
        memcpy(a->client_id, a->cfg->client_id, n + 1);
    } else {
        /* The thing name is the client id from now on; it lies in flash without a NUL. */
        chunkprov_span t = act->credentials.thing_name;
        if (t.len == 0 || t.len > CPA_CLIENT_ID_MAX) {
            return -EINVAL;
        }
        int rc = a->platform->read(a->platform->ctx, t.offset, (uint8_t *)a->client_id, t.len);
        if (rc != 0) {
            return rc;
        }
        a->client_id[t.len] = '\0';
    }
    id->client_id = a->client_id;
    return 0;
}

static void act_connect(struct cpa *a, const chunkprov_action *act)
{
    if (a->conn != CPA_CONN_NONE) {
        a->port->close(a->port->ctx);
        a->conn = CPA_CONN_NONE;
        a->subscribing = false;
    }
    struct cpa_identity id;
    int rc = identity(a, act, &id);
    if (rc != 0) {
        cpa_logf(a, CPA_ERR, "cannot read the identity to connect with (%d)", rc);
        a->conn = CPA_CONN_PENDING;
        lost(a);
        return;
    }
    if (act->kind == CHUNKPROV_ACTION_KIND_ROLLED_BACK) {
        cpa_logf(a, CPA_WRN, "new credentials rolled back");
    }
    if (id.claim) {
        cpa_logf(a, CPA_INF, "connecting as %s with the claim certificate", id.client_id);
    } else {
        cpa_logf(a, CPA_INF, "connecting as %s with the credentials of slot %c", id.client_id,
                 id.slot == 0 ? 'A' : 'B');
    }
    a->stats.connects++;
    a->conn = CPA_CONN_PENDING;
    rc = a->port->connect(a->port->ctx, &id);
    if (rc != 0) {
        cpa_logf(a, CPA_WRN, "connect failed (%d)", rc);
        a->port->close(a->port->ctx);
        lost(a);
        return;
    }
    /* WORKAROUND (C API): a CONNACK that arrives after the next chunkprov_client_poll() is
     * ignored and the client asks for CONNECT again (and again, with a growing wait), so the
     * CONNACK is awaited here, before polling, for at most the configured timeout. */
    uint32_t start = a->port->now_ms(a->port->ctx);
    uint32_t limit = a->cfg->timeout_ticks;
    while (a->conn == CPA_CONN_PENDING && a->outcome.end == CPA_RUNNING) {
        uint32_t spent = a->port->now_ms(a->port->ctx) - start;
        if (spent >= limit) {
            a->stats.connack_timeouts++;
            drop(a, "no CONNACK in time");
            return;
        }
        serve(a, limit - spent);
    }
}

static void act_publish(struct cpa *a, const chunkprov_action *act)
{
    const char *kind = cpa_topic_kind(act->topic, act->topic_len);
    if (strcmp(kind, "request") == 0) {
        a->stats.requests++;
        cpa_logf(a, CPA_INF, "request on %s (%u bytes)", act->topic, (unsigned)act->payload_len);
    } else if (strcmp(kind, "pull") == 0) {
        a->stats.pulls++;
        cpa_logf(a, CPA_INF, "pull %.*s", (int)act->payload_len, (const char *)act->payload);
    } else if (strcmp(kind, "confirm") == 0) {
        a->stats.confirmations++;
        cpa_logf(a, CPA_INF, "confirmation on %s", act->topic);
    } else {
        cpa_logf(a, CPA_INF, "publish on %s", act->topic);
    }
    if (a->conn != CPA_CONN_UP) {
        lost(a);
        return;
    }
    int rc = a->port->publish(a->port->ctx, act->topic, act->payload, act->payload_len);
    if (rc != 0) {
        cpa_logf(a, CPA_WRN, "publish failed (%d)", rc);
        a->port->close(a->port->ctx);
        lost(a);
        return;
    }
    a->stats.published++;
}

static void act_subscribe(struct cpa *a, const chunkprov_action *act)
{
    cpa_logf(a, CPA_INF, "subscribe %s", act->topic);
    if (a->conn != CPA_CONN_UP) {
        lost(a);
        return;
    }
    a->subscribing = true;
    int rc = a->port->subscribe(a->port->ctx, act->topic);
    if (rc != 0) {
        cpa_logf(a, CPA_WRN, "subscribe failed (%d)", rc);
        a->port->close(a->port->ctx);
        lost(a);
        return;
    }
    a->stats.subscribes++;
}

chunkprov_status cpa_start(struct cpa *a, const chunkprov_platform *platform,
                           const chunkprov_client_config *cfg, const struct cpa_port *port,
                           uint8_t *buf, size_t buf_len)
{
    memset(a, 0, sizeof *a);
    a->platform = platform;
    a->cfg = cfg;
    a->port = port;
    a->buf = buf;
    a->buf_len = buf_len;
    a->last_ms = port->now_ms(port->ctx);
    chunkprov_status st = chunkprov_client_start(&a->client, platform, cfg);
    if (st != CHUNKPROV_STATUS_OK) {
        fail(a, "chunkprov_client_start", st);
        return st;
    }
    uint16_t held = 0, count = 0;
    if (chunkprov_client_progress(&a->client, &held, &count) == CHUNKPROV_STATUS_OK && count > 0) {
        cpa_logf(a, CPA_INF, "resuming a transfer: %u of %u frames already in flash", held,
                 count);
    }
    return st;
}

enum cpa_end cpa_step(struct cpa *a)
{
    if (a->outcome.end != CPA_RUNNING) {
        return a->outcome.end;
    }
    clock_tick(a);
    chunkprov_action act;
    memset(&act, 0, sizeof act);
    chunkprov_status st =
        chunkprov_client_poll(&a->client, a->platform, a->cfg, a->buf, a->buf_len, &act);
    if (st != CHUNKPROV_STATUS_OK) {
        fail(a, "chunkprov_client_poll", st);
        return a->outcome.end;
    }
    switch (act.kind) {
    case CHUNKPROV_ACTION_KIND_CONNECT:
    case CHUNKPROV_ACTION_KIND_ROLLED_BACK:
        act_connect(a, &act);
        break;
    case CHUNKPROV_ACTION_KIND_SUBSCRIBE:
        act_subscribe(a, &act);
        break;
    case CHUNKPROV_ACTION_KIND_PUBLISH:
        act_publish(a, &act);
        break;
    case CHUNKPROV_ACTION_KIND_WAIT:
        cpa_logf(a, CPA_DBG, "wait up to %u ms", (unsigned)act.wait_ticks);
        serve(a, act.wait_ticks);
        break;
    case CHUNKPROV_ACTION_KIND_DONE:
        a->outcome.end = CPA_DONE;
        a->outcome.slot = act.slot;
        a->outcome.creds = act.credentials;
        break;
    case CHUNKPROV_ACTION_KIND_GIVE_UP:
        a->outcome.end = CPA_GAVE_UP;
        a->outcome.give_up = act.give_up;
        a->outcome.reject_code = act.reject_code;
        cpa_logf(a, CPA_ERR, "gave up: reason %d, code %u", (int)act.give_up, act.reject_code);
        break;
    default:
        fail(a, "chunkprov_client_poll: unknown action", CHUNKPROV_STATUS_INVALID_ARGUMENT);
        break;
    }
    return a->outcome.end;
}

enum cpa_end cpa_run(struct cpa *a)
{
    enum cpa_end e;
    while ((e = cpa_step(a)) == CPA_RUNNING) {
    }
    return e;
}
