/*
 * native_sim: settings from the command line, and the claim credentials read from the host's
 * files (on a device they are in the modem or secure storage from the factory). Options:
 *
 *   zephyr.exe --flash=<file> --seed-random --serial=<S> --ca=<pem> --claim-cert=<pem>
 *              --claim-key=<pem> [--broker=127.0.0.1] [--claim-port=P] [--device-port=P]
 *              [--stop-after-frames=N]
 *
 * (--flash and --seed-random are the board's own: the flash image file, and a random seed for
 * the entropy device, without which every run makes the same nonces and keys.)
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include <zephyr/logging/log.h>

#include "app.h"
#include "cmdline.h"
#include "posix_native_task.h"
#include "nsi_host_trampolines.h"

LOG_MODULE_DECLARE(chunkprov_app, CONFIG_CHUNKPROV_APP_LOG_LEVEL);

static char *opt_serial;
static char *opt_broker;
static char *opt_ca;
static char *opt_claim_cert;
static char *opt_claim_key;
static uint32_t opt_claim_port;
static uint32_t opt_device_port;
static uint32_t opt_stop_after_frames;

static void add_options(void)
{
    static struct args_struct_t options[] = {
        {.option = "serial", .name = "serial", .type = 's', .dest = &opt_serial,
         .descript = "The device's serial number (claim client id: <claim prefix><serial>)"},
        {.option = "broker", .name = "address", .type = 's', .dest = &opt_broker,
         .descript = "Broker IPv4 address (default CONFIG_CHUNKPROV_APP_BROKER)"},
        {.option = "claim-port", .name = "port", .type = 'u', .dest = &opt_claim_port,
         .descript = "Port of the claim listener"},
        {.option = "device-port", .name = "port", .type = 'u', .dest = &opt_device_port,
         .descript = "Port for the new credentials"},
        {.option = "ca", .name = "pem", .type = 's', .dest = &opt_ca,
         .descript = "The broker's CA certificate (PEM file)"},
        {.option = "claim-cert", .name = "pem", .type = 's', .dest = &opt_claim_cert,
         .descript = "The claim certificate (PEM file)"},
        {.option = "claim-key", .name = "pem", .type = 's', .dest = &opt_claim_key,
         .descript = "The claim certificate's private key (PEM file)"},
        {.option = "stop-after-frames", .name = "N", .type = 'u', .dest = &opt_stop_after_frames,
         .descript = "Stop after N frames were held (a power cut; run again to resume)"},
        ARG_TABLE_ENDMARKER,
    };
    native_add_command_line_opts(options);
}

NATIVE_TASK(add_options, PRE_BOOT_1, 50);

/* Reads a host file into `buf` (NUL-terminated). */
static int slurp(const char *path, char *buf, size_t cap)
{
    int fd = nsi_host_open(path, O_RDONLY);
    if (fd < 0) {
        LOG_ERR("cannot open %s", path);
        return -ENOENT;
    }
    size_t len = 0;
    for (;;) {
        long n = nsi_host_read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            (void)nsi_host_close(fd);
            return -EIO;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len == cap - 1) {
            (void)nsi_host_close(fd);
            LOG_ERR("%s is larger than %u bytes", path, (unsigned)(cap - 1));
            return -EFBIG;
        }
    }
    (void)nsi_host_close(fd);
    buf[len] = '\0';
    return 0;
}

int app_settings_native(struct app_settings *s)
{
    static char ca[4096], cert[4096], key[2048];
    if (opt_serial != NULL) {
        s->serial = opt_serial;
    }
    if (opt_broker != NULL) {
        s->broker = opt_broker;
    }
    if (opt_claim_port > 0 && opt_claim_port <= UINT16_MAX) {
        s->claim_port = (uint16_t)opt_claim_port;
    }
    if (opt_device_port > 0 && opt_device_port <= UINT16_MAX) {
        s->device_port = (uint16_t)opt_device_port;
    }
    s->stop_after_frames = opt_stop_after_frames;
    int rc = 0;
    if (opt_ca != NULL && rc == 0) {
        rc = slurp(opt_ca, ca, sizeof ca);
        s->ca_pem = ca;
    }
    if (opt_claim_cert != NULL && rc == 0) {
        rc = slurp(opt_claim_cert, cert, sizeof cert);
        s->claim_cert_pem = cert;
    }
    if (opt_claim_key != NULL && rc == 0) {
        rc = slurp(opt_claim_key, key, sizeof key);
        s->claim_key_pem = key;
    }
    return rc;
}
