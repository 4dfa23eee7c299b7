/*
 * chunkprov application for Zephyr: provisions the device's own AWS IoT credentials with the
 * chunkprov library, over Zephyr's MQTT client with TLS, into the flash partition
 * `chunkprov_partition` (the client's journal and slots A/B, then one page for the device key
 * and CSR). The provisioning logic is app/core (shared with the embedded-Linux app); this file
 * wires the Zephyr parts to it and reports the outcome.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <zephyr/kernel.h>
#if defined(CONFIG_THREAD_ANALYZER)
#include <zephyr/debug/thread_analyzer.h>
#endif
#include <zephyr/logging/log.h>
#include <zephyr/logging/log_ctrl.h>

#if defined(CONFIG_ARCH_POSIX)
#include "posix_board_if.h"
#elif defined(CONFIG_REBOOT)
#include <zephyr/sys/reboot.h>
#endif

#include "app.h"

LOG_MODULE_REGISTER(chunkprov_app, CONFIG_CHUNKPROV_APP_LOG_LEVEL);

static struct app_flash flash;
static struct cpa app;
static struct cpa_keys keys;
static uint8_t key_scratch[CPA_KEY_MAX];
static uint8_t poll_buf[CPA_CSR_MAX + 512];
static char client_id[CPA_CLIENT_ID_MAX + 1];

/* Prints one credential item that is text (thing name, certificate id). */
static void print_span(const char *what, chunkprov_span s)
{
    char text[CPA_CLIENT_ID_MAX + 1];
    size_t n = MIN(s.len, sizeof text - 1);
    if (flash_area_read(flash.fa, (off_t)s.offset, text, n) != 0) {
        n = 0;
    }
    text[n] = '\0';
    printk("%s %s\n", what, text);
}

static int run(void)
{
    struct app_settings s = {
        .serial = CONFIG_CHUNKPROV_APP_SERIAL,
        .broker = CONFIG_CHUNKPROV_APP_BROKER,
        .claim_port = CONFIG_CHUNKPROV_APP_CLAIM_PORT,
        .device_port = CONFIG_CHUNKPROV_APP_DEVICE_PORT,
    };
#if defined(CHUNKPROV_APP_CLAIM_EMBEDDED)
    app_settings_embedded(&s);
#endif
#if defined(CONFIG_BOARD_NATIVE_SIM)
    if (app_settings_native(&s) != 0) {
        return -EINVAL;
    }
#endif
#if defined(CONFIG_CHUNKPROV_APP_MODEM)
    static char imei[32];
    int mrc = app_modem_init(imei, sizeof imei);
    if (mrc != 0) {
        return mrc;
    }
    if (s.serial[0] == '\0') {
        s.serial = imei;
    }
#endif
    if (s.serial == NULL || s.serial[0] == '\0') {
        LOG_ERR("no serial number (CONFIG_CHUNKPROV_APP_SERIAL, or --serial on native_sim)");
        return -EINVAL;
    }
    int n = snprintf(client_id, sizeof client_id, "%s%s", CONFIG_CHUNKPROV_APP_CLAIM_PREFIX,
                     s.serial);
    if (n < 0 || (size_t)n >= sizeof client_id) {
        LOG_ERR("claim client id longer than %u bytes", CPA_CLIENT_ID_MAX);
        return -EINVAL;
    }

    int rc = app_flash_open(&flash);
    if (rc != 0) {
        return rc;
    }
    static chunkprov_platform platform;
    platform = app_flash_platform(&flash);
    /* The client's partition, then one page for the device key and CSR. */
    uint32_t key_page = (uint32_t)flash.fa->fa_size - flash.erase_size;

    rc = app_creds_init(&s);
    if (rc != 0) {
        return rc;
    }
    if (IS_ENABLED(CONFIG_CHUNKPROV_APP_CSR)) {
        rc = cpa_keys_open(&platform, key_page, flash.erase_size, s.serial, app_keygen, NULL,
                           key_scratch, sizeof key_scratch, &keys);
        if (rc != 0) {
            LOG_ERR("device key and CSR: %d", rc);
            return rc;
        }
        LOG_INF("%s the device key and CSR (CN=%s)%s", keys.created ? "made" : "using",
                s.serial, keys.created ? ", kept in flash" : " from flash");
    }

    static chunkprov_client_config cfg;
    cfg = (chunkprov_client_config){
        .prefix = CONFIG_CHUNKPROV_APP_PREFIX,
        .client_id = client_id,
        .serial = s.serial,
        .csr = IS_ENABLED(CONFIG_CHUNKPROV_APP_CSR) ? keys.csr : NULL,
        .packet_limit = CONFIG_CHUNKPROV_APP_PACKET_LIMIT,
        .window = CONFIG_CHUNKPROV_APP_WINDOW,
        .max_retries = CONFIG_CHUNKPROV_APP_MAX_RETRIES,
        .max_provisions = CONFIG_CHUNKPROV_APP_MAX_PROVISIONS,
        .max_confirm_attempts = CONFIG_CHUNKPROV_APP_MAX_CONFIRM_ATTEMPTS,
        .max_boots = CONFIG_CHUNKPROV_APP_MAX_BOOTS,
        .timeout_ticks = CONFIG_CHUNKPROV_APP_TIMEOUT_MS,
        .backoff_max_ticks = CONFIG_CHUNKPROV_APP_BACKOFF_MAX_MS,
        .partition_offset = 0,
        .partition_size = key_page,
    };
    static struct cpa_port port;
    app_mqtt_port(&port, &app, &s, &flash, keys.key);
    if (cpa_start(&app, &platform, &cfg, &port, poll_buf, sizeof poll_buf) !=
        CHUNKPROV_STATUS_OK) {
        return -EIO;
    }
    app.stop_after_frames = s.stop_after_frames;
    enum cpa_end end = cpa_run(&app);
    port.close(port.ctx);

    const struct cpa_stats *st = &app.stats;
    switch (end) {
    case CPA_DONE:
        printk("chunkprov: provisioned, slot %c\n", app.outcome.slot == 0 ? 'A' : 'B');
        print_span("chunkprov: thing", app.outcome.creds.thing_name);
        print_span("chunkprov: certificate", app.outcome.creds.certificate_id);
        rc = 0;
        break;
    case CPA_GAVE_UP:
        printk("chunkprov: gave up: reason %d, code %u\n", (int)app.outcome.give_up,
               app.outcome.reject_code);
        rc = 2;
        break;
    case CPA_STOPPED:
        printk("chunkprov: stopped after %u frames (power cut); run again to resume\n",
               st->frames_held);
        rc = 3;
        break;
    default:
        printk("chunkprov: failed: %s\n", chunkprov_status_name(app.outcome.status));
        rc = 1;
        break;
    }
    static char line[256];
    cpa_format_stats(st, line, sizeof line);
    printk("chunkprov: messages: %s\n", line);
    return rc;
}

int main(void)
{
    int rc = run();
    if (rc < 0) {
        printk("chunkprov: error %d\n", rc);
    }
#if defined(CONFIG_THREAD_ANALYZER)
    /* The stack each thread needed (the provisioning runs in main). */
    thread_analyzer_print(0);
#endif
#if defined(CONFIG_ARCH_POSIX)
    posix_exit(rc < 0 ? 1 : rc);
#elif defined(CONFIG_QEMU_TARGET) && defined(CONFIG_REBOOT)
    /* Under QEMU with -no-reboot a reset ends the emulation: the run is over. The log (and
     * printk through it) is flushed first. */
    LOG_PANIC();
    sys_reboot(SYS_REBOOT_COLD);
#endif
    return 0;
}
