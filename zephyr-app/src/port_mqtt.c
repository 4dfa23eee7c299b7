/*
 * The application core's port (struct cpa_port) on Zephyr's MQTT client: MQTT 3.1.1 over one
 * TLS socket at a time (closed before the next connection: CONFIG_NET_SOCKETS_TLS_MAX_CONTEXTS
 * may be 1), clean sessions, QoS 1. Each PUBLISH is drained inside the event callback with
 * mqtt_read_publish_payload_blocking() in pieces of CONFIG_CHUNKPROV_APP_PIECE bytes, each piece
 * straight into the library; then the PUBACK. The connection is served by zsock_poll() +
 * mqtt_input(), kept alive by mqtt_live().
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <version.h>
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>
#include <zephyr/net/mqtt.h>
#include <zephyr/net/socket.h>

#include "app.h"

LOG_MODULE_DECLARE(chunkprov_app, CONFIG_CHUNKPROV_APP_LOG_LEVEL);

static struct zport {
    struct mqtt_client client;
    struct sockaddr_in broker;
    sec_tag_t tag;
    bool open;    /* mqtt_connect() succeeded and no DISCONNECT since */
    bool closing; /* events of a connection we close ourselves are not reported */
    uint16_t mid;
    struct cpa *app;
    const struct app_settings *settings;
    const struct app_flash *flash;
    chunkprov_span device_key;
    uint8_t rx_buf[CONFIG_CHUNKPROV_APP_MQTT_BUFFER];
    uint8_t tx_buf[CONFIG_CHUNKPROV_APP_MQTT_BUFFER];
    uint8_t piece[CONFIG_CHUNKPROV_APP_PIECE];
} zp;

static uint16_t next_mid(void)
{
    zp.mid = zp.mid == UINT16_MAX ? 1 : zp.mid + 1;
    return zp.mid;
}

/* Drains one PUBLISH inside the event callback: the payload goes to the library piece by piece
 * as it comes off the socket, then the PUBACK (QoS 1). */
static void on_publish(struct mqtt_client *c, const struct mqtt_publish_param *p)
{
    const struct mqtt_utf8 *t = &p->message.topic.topic;
    uint32_t left = p->message.payload.len;
    (void)cpa_on_message_begin(zp.app, (const char *)t->utf8, t->size, left);
    while (left > 0) {
        size_t want = MIN(left, sizeof zp.piece);
        int n = mqtt_read_publish_payload_blocking(c, zp.piece, want);
        if (n <= 0) {
            LOG_WRN("reading a PUBLISH payload: %d (%u bytes unread)", n, left);
            break;
        }
        (void)cpa_on_message_data(zp.app, zp.piece, (size_t)n);
        left -= (uint32_t)n;
    }
    (void)cpa_on_message_end(zp.app);
    if (left == 0 && p->message.topic.qos == MQTT_QOS_1_AT_LEAST_ONCE) {
        struct mqtt_puback_param ack;
        memset(&ack, 0, sizeof ack);
        ack.message_id = p->message_id;
        int rc = mqtt_publish_qos1_ack(c, &ack);
        if (rc != 0) {
            LOG_WRN("mqtt_publish_qos1_ack: %d", rc);
        }
    }
}

static void on_event(struct mqtt_client *c, const struct mqtt_evt *evt)
{
    switch (evt->type) {
    case MQTT_EVT_CONNACK:
        cpa_on_connack(zp.app, evt->result == 0 && evt->param.connack.return_code == 0);
        break;
    case MQTT_EVT_DISCONNECT:
        zp.open = false;
        if (!zp.closing) {
            cpa_on_disconnect(zp.app);
        }
        break;
    case MQTT_EVT_PUBLISH:
        if (evt->result == 0) {
            on_publish(c, &evt->param.publish);
        }
        break;
    case MQTT_EVT_SUBACK: {
        const struct mqtt_binstr *codes = &evt->param.suback.return_codes;
        bool granted = evt->result == 0 && codes->len >= 1 && codes->data != NULL &&
                       codes->data[0] != MQTT_SUBACK_FAILURE;
        cpa_on_suback(zp.app, granted);
        break;
    }
    case MQTT_EVT_PUBACK:
        LOG_DBG("PUBACK %u", evt->param.puback.message_id);
        break;
    default:
        break;
    }
}

static void zp_close(void *ctx)
{
    ARG_UNUSED(ctx);
    if (!zp.open) {
        return;
    }
    zp.closing = true;
#if KERNEL_VERSION_NUMBER >= ZEPHYR_VERSION(4, 2, 0)
    (void)mqtt_disconnect(&zp.client, NULL);
#else
    (void)mqtt_disconnect(&zp.client);
#endif
    if (zp.open) {
        (void)mqtt_abort(&zp.client);
    }
    zp.open = false;
    zp.closing = false;
}

static int resolve(const char *host, uint16_t port)
{
    memset(&zp.broker, 0, sizeof zp.broker);
    zp.broker.sin_family = AF_INET;
    zp.broker.sin_port = htons(port);
    if (zsock_inet_pton(AF_INET, host, &zp.broker.sin_addr) == 1) {
        return 0;
    }
    struct zsock_addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct zsock_addrinfo *res = NULL;
    int rc = zsock_getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        LOG_ERR("cannot resolve %s: %d", host, rc);
        return -EHOSTUNREACH;
    }
    zp.broker.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    zsock_freeaddrinfo(res);
    return 0;
}

static int zp_connect(void *ctx, const struct cpa_identity *id)
{
    zp_close(ctx);
    int rc = app_creds_for(zp.flash, id, zp.device_key, &zp.tag);
    if (rc != 0) {
        return rc;
    }
    const struct app_settings *s = zp.settings;
    rc = resolve(s->broker, id->claim ? s->claim_port : s->device_port);
    if (rc != 0) {
        return rc;
    }
    struct mqtt_client *c = &zp.client;
    mqtt_client_init(c);
    c->broker = &zp.broker;
    c->evt_cb = on_event;
    c->client_id.utf8 = (const uint8_t *)id->client_id;
    c->client_id.size = strlen(id->client_id);
    c->protocol_version = MQTT_VERSION_3_1_1;
    c->clean_session = 1;
    c->rx_buf = zp.rx_buf;
    c->rx_buf_size = sizeof zp.rx_buf;
    c->tx_buf = zp.tx_buf;
    c->tx_buf_size = sizeof zp.tx_buf;
    c->transport.type = MQTT_TRANSPORT_SECURE;
    struct mqtt_sec_config *tls = &c->transport.tls.config;
    tls->peer_verify = TLS_PEER_VERIFY_REQUIRED;
    tls->cipher_list = NULL;
    tls->sec_tag_list = &zp.tag;
    tls->sec_tag_count = 1;
    tls->hostname = CONFIG_CHUNKPROV_APP_TLS_HOSTNAME;
    tls->cert_nocopy = TLS_CERT_NOCOPY_NONE;
    /* TCP and the TLS handshake happen here; the CONNACK arrives later through mqtt_input(). */
    rc = mqtt_connect(c);
    if (rc != 0) {
        LOG_WRN("mqtt_connect: %d", rc);
        return rc;
    }
    zp.open = true;
    return 0;
}

static int zp_subscribe(void *ctx, const char *topic)
{
    ARG_UNUSED(ctx);
    struct mqtt_topic t;
    memset(&t, 0, sizeof t);
    t.topic.utf8 = (const uint8_t *)topic;
    t.topic.size = strlen(topic);
    t.qos = MQTT_QOS_1_AT_LEAST_ONCE;
    struct mqtt_subscription_list list;
    memset(&list, 0, sizeof list);
    list.list = &t;
    list.list_count = 1;
    list.message_id = next_mid();
    return mqtt_subscribe(&zp.client, &list);
}

static int zp_publish(void *ctx, const char *topic, const uint8_t *payload, size_t len)
{
    ARG_UNUSED(ctx);
    struct mqtt_publish_param p;
    memset(&p, 0, sizeof p);
    p.message.topic.topic.utf8 = (const uint8_t *)topic;
    p.message.topic.topic.size = strlen(topic);
    p.message.topic.qos = MQTT_QOS_1_AT_LEAST_ONCE;
    p.message.payload.data = (uint8_t *)payload;
    p.message.payload.len = len;
    p.message_id = next_mid();
    return mqtt_publish(&zp.client, &p);
}

/* The connection broke: close it quietly and report the error (the core tells the client). */
static int broken(int rc)
{
    zp_close(NULL);
    return rc < 0 ? rc : -ECONNRESET;
}

static int zp_serve(void *ctx, uint32_t max_ms)
{
    ARG_UNUSED(ctx);
    if (!zp.open) {
        k_msleep(max_ms);
        return 0;
    }
    int tmo = max_ms > INT_MAX ? INT_MAX : (int)max_ms;
    int left = mqtt_keepalive_time_left(&zp.client);
    if (left >= 0 && left < tmo) {
        tmo = left;
    }
    struct zsock_pollfd fds = {.fd = zp.client.transport.tls.sock, .events = ZSOCK_POLLIN};
    int rc = zsock_poll(&fds, 1, tmo);
    if (rc < 0) {
        return broken(-errno);
    }
    if (rc > 0 && (fds.revents & ZSOCK_POLLIN)) {
        rc = mqtt_input(&zp.client);
        if (rc != 0) {
            return broken(rc);
        }
    }
    if (zp.open && (fds.revents & (ZSOCK_POLLERR | ZSOCK_POLLHUP | ZSOCK_POLLNVAL))) {
        return broken(-ECONNRESET);
    }
    if (zp.open) {
        rc = mqtt_live(&zp.client);
        if (rc != 0 && rc != -EAGAIN) {
            return broken(rc);
        }
    }
    return zp.open ? 0 : -ENOTCONN;
}

static uint32_t zp_now_ms(void *ctx)
{
    ARG_UNUSED(ctx);
    return k_uptime_get_32();
}

static void zp_log(void *ctx, enum cpa_level level, const char *line)
{
    ARG_UNUSED(ctx);
    switch (level) {
    case CPA_ERR:
        LOG_ERR("%s", line);
        break;
    case CPA_WRN:
        LOG_WRN("%s", line);
        break;
    case CPA_INF:
        LOG_INF("%s", line);
        break;
    default:
        LOG_DBG("%s", line);
        break;
    }
}

void app_mqtt_port(struct cpa_port *port, struct cpa *app, const struct app_settings *s,
                   const struct app_flash *f, chunkprov_span device_key)
{
    zp.app = app;
    zp.settings = s;
    zp.flash = f;
    zp.device_key = device_key;
    zp.client.user_data = NULL;
    memset(port, 0, sizeof *port);
    port->ctx = &zp;
    port->connect = zp_connect;
    port->subscribe = zp_subscribe;
    port->publish = zp_publish;
    port->close = zp_close;
    port->serve = zp_serve;
    port->now_ms = zp_now_ms;
    port->log = zp_log;
}
