/*
 * The library's platform on Zephyr: the chunkprov partition through flash_area_*, randomness
 * from sys_csrand_get(), diagnostics to the log.
 */
#include <errno.h>

#include <zephyr/devicetree.h>
#include <zephyr/drivers/flash.h>
#include <zephyr/logging/log.h>
#include <zephyr/random/random.h>
#include <zephyr/storage/flash_map.h>

#if defined(CONFIG_FLASH_SIMULATOR)
#include <zephyr/drivers/flash/flash_simulator.h>
#endif

#include "app.h"

LOG_MODULE_REGISTER(chunkprov_lib, CONFIG_CHUNKPROV_APP_LOG_LEVEL);

static int f_read(void *ctx, uint32_t offset, uint8_t *buf, uint32_t len)
{
    const struct app_flash *f = ctx;
    return flash_area_read(f->fa, (off_t)offset, buf, len);
}

static int f_write(void *ctx, uint32_t offset, const uint8_t *buf, uint32_t len)
{
    const struct app_flash *f = ctx;
    return flash_area_write(f->fa, (off_t)offset, buf, len);
}

static int f_erase(void *ctx, uint32_t offset, uint32_t len)
{
    const struct app_flash *f = ctx;
    return flash_area_erase(f->fa, (off_t)offset, len);
}

static int f_geometry(void *ctx, chunkprov_geometry *out)
{
    const struct app_flash *f = ctx;
    out->write_size = f->write_size;
    out->erase_size = f->erase_size;
    out->capacity = (uint32_t)f->fa->fa_size;
    return 0;
}

static void f_log(void *ctx, chunkprov_log_level level, const char *message)
{
    ARG_UNUSED(ctx);
    switch (level) {
    case CHUNKPROV_LOG_LEVEL_ERROR:
        LOG_ERR("%s", message);
        break;
    case CHUNKPROV_LOG_LEVEL_WARN:
        LOG_WRN("%s", message);
        break;
    case CHUNKPROV_LOG_LEVEL_INFO:
        LOG_INF("%s", message);
        break;
    default:
        LOG_DBG("%s", message);
        break;
    }
}

static void f_random(void *ctx, uint8_t *buf, uint32_t len)
{
    ARG_UNUSED(ctx);
    int rc = sys_csrand_get(buf, len);
    if (rc != 0) {
        /* A predictable nonce would break the protocol without a sound: stop here. */
        LOG_ERR("sys_csrand_get: %d", rc);
        k_panic();
    }
}

int app_flash_open(struct app_flash *f)
{
    int rc = flash_area_open(FIXED_PARTITION_ID(chunkprov_partition), &f->fa);
    if (rc != 0) {
        LOG_ERR("flash_area_open(chunkprov_partition): %d", rc);
        return rc;
    }
    const struct device *dev = flash_area_get_device(f->fa);
    if (dev == NULL || !device_is_ready(dev)) {
        LOG_ERR("flash device not ready");
        return -ENODEV;
    }
    struct flash_pages_info page;
    rc = flash_get_page_info_by_offs(dev, f->fa->fa_off, &page);
    if (rc != 0) {
        LOG_ERR("flash_get_page_info_by_offs: %d", rc);
        return rc;
    }
    f->write_size = flash_area_align(f->fa);
    f->erase_size = (uint32_t)page.size;
    f->mem = NULL;
#if defined(CONFIG_FLASH_SIMULATOR)
    size_t size = 0;
    uint8_t *mem = flash_simulator_get_memory(dev, &size);
    if (mem != NULL && (size_t)f->fa->fa_off + f->fa->fa_size <= size) {
        f->mem = mem + f->fa->fa_off;
    }
#elif defined(CONFIG_SOC_FAMILY_NORDIC_NRF) && DT_HAS_CHOSEN(zephyr_flash_controller) &&          \
    DT_HAS_CHOSEN(zephyr_flash)
    /* Internal flash is memory-mapped from its base address. */
    if (dev == DEVICE_DT_GET(DT_CHOSEN(zephyr_flash_controller))) {
        f->mem = (const uint8_t *)(DT_REG_ADDR(DT_CHOSEN(zephyr_flash)) + f->fa->fa_off);
    }
#endif
    LOG_INF("partition at 0x%lx, %u bytes: write unit %u, page %u%s", (long)f->fa->fa_off,
            (unsigned)f->fa->fa_size, f->write_size, f->erase_size,
            f->mem != NULL ? ", memory-mapped" : "");
    return 0;
}

chunkprov_platform app_flash_platform(struct app_flash *f)
{
    chunkprov_platform p = {
        .ctx = f,
        .read = f_read,
        .write = f_write,
        .erase = f_erase,
        .geometry = f_geometry,
        .log = IS_ENABLED(CONFIG_CHUNKPROV_LOG) ? f_log : NULL,
        .random = f_random,
    };
    return p;
}

const uint8_t *app_flash_at(const struct app_flash *f, uint32_t offset, uint32_t len)
{
    if (f->mem == NULL || offset > f->fa->fa_size || len > f->fa->fa_size - offset) {
        return NULL;
    }
    return f->mem + offset;
}
