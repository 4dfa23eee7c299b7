/*
 * cpa_keys: the device key and CSR record (see cpa_keys.h).
 */
#include "cpa_keys.h"

#include <errno.h>
#include <string.h>

#define UNIT 32u
#define ROUND_UP(x) (((x) + UNIT - 1u) & ~(UNIT - 1u))
static const uint8_t MAGIC[4] = {'C', 'P', 'K', '1'};

static uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

int cpa_base64url(const uint8_t *data, size_t len, char *out, size_t cap)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t need = len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
    if (need + 1 > cap) {
        return -1;
    }
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = abc[v >> 6 & 63];
        out[o++] = abc[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = abc[v >> 6 & 63];
    }
    out[o] = '\0';
    return (int)o;
}

/* Writes `len` bytes at `off` (a multiple of 32) in whole write units, the last one padded with
 * 0xFF (erased flash). */
static int put(const chunkprov_platform *p, uint32_t ws, uint32_t off, const uint8_t *src,
               uint32_t len)
{
    uint32_t whole = len / ws * ws;
    if (whole > 0) {
        int rc = p->write(p->ctx, off, src, whole);
        if (rc != 0) {
            return rc;
        }
    }
    if (whole < len) {
        uint8_t unit[UNIT];
        memset(unit, 0xFF, sizeof unit);
        memcpy(unit, src + whole, len - whole);
        return p->write(p->ctx, off + whole, unit, ws);
    }
    return 0;
}

/* Reads and checks the record; 0 if valid for `serial`. */
static int load(const chunkprov_platform *p, uint32_t page, uint32_t page_size,
                const char *serial, struct cpa_keys *out)
{
    uint8_t head[UNIT];
    int rc = p->read(p->ctx, page, head, sizeof head);
    if (rc != 0) {
        return rc;
    }
    if (memcmp(head, MAGIC, sizeof MAGIC) != 0) {
        return -ENOENT;
    }
    uint32_t csr_len = le16(head + 4);
    uint32_t key_len = le16(head + 6);
    uint32_t key_off = UNIT + ROUND_UP(csr_len + 1u);
    if (csr_len == 0 || csr_len > CPA_CSR_MAX || key_len > CPA_KEY_MAX ||
        key_off + key_len > page_size) {
        return -ENOENT;
    }
    rc = p->read(p->ctx, page + UNIT, (uint8_t *)out->csr, csr_len + 1u);
    if (rc != 0) {
        return rc;
    }
    if (out->csr[csr_len] != '\0' || strlen(out->csr) != csr_len) {
        return -ENOENT;
    }
    uint32_t h = fnv1a(2166136261u, (const uint8_t *)serial, strlen(serial));
    h = fnv1a(h, (const uint8_t *)out->csr, csr_len);
    uint8_t chunk[64];
    uint8_t last = 0;
    for (uint32_t done = 0; done < key_len;) {
        uint32_t n = key_len - done < sizeof chunk ? key_len - done : (uint32_t)sizeof chunk;
        rc = p->read(p->ctx, page + key_off + done, chunk, n);
        if (rc != 0) {
            return rc;
        }
        h = fnv1a(h, chunk, n);
        last = chunk[n - 1];
        done += n;
    }
    if (h != le32(head + 8) || (key_len > 0 && last != 0)) {
        return -ENOENT;
    }
    out->key.offset = page + key_off;
    out->key.len = key_len;
    return 0;
}

int cpa_keys_open(const chunkprov_platform *p, uint32_t page, uint32_t page_size,
                  const char *serial, cpa_keygen_fn gen, void *gen_ctx, uint8_t *scratch,
                  size_t scratch_len, struct cpa_keys *out)
{
    if (p == NULL || serial == NULL || gen == NULL || scratch == NULL || out == NULL ||
        scratch_len < CPA_KEY_MAX || page_size < CPA_KEYS_BYTES) {
        return -EINVAL;
    }
    chunkprov_geometry g;
    int rc = p->geometry(p->ctx, &g);
    if (rc != 0) {
        return rc;
    }
    if (g.write_size == 0 || g.write_size > UNIT || page % g.erase_size != 0 ||
        page_size % g.erase_size != 0) {
        return -EINVAL;
    }
    memset(out, 0, sizeof *out);
    rc = load(p, page, page_size, serial, out);
    if (rc != -ENOENT) {
        return rc;
    }

    /* Nothing valid: make a new key and CSR and write them, the header last. */
    rc = p->erase(p->ctx, page, page_size);
    if (rc != 0) {
        return rc;
    }
    size_t key_len = 0;
    memset(out->csr, 0, sizeof out->csr);
    rc = gen(gen_ctx, serial, out->csr, sizeof out->csr, scratch, CPA_KEY_MAX, &key_len);
    if (rc != 0) {
        return rc;
    }
    const char *nul = memchr(out->csr, '\0', sizeof out->csr);
    size_t csr_len = nul != NULL ? (size_t)(nul - out->csr) : sizeof out->csr;
    if (csr_len == 0 || csr_len > CPA_CSR_MAX || key_len > CPA_KEY_MAX ||
        (key_len > 0 && scratch[key_len - 1] != 0)) {
        return -EINVAL;
    }
    uint32_t key_off = UNIT + ROUND_UP((uint32_t)csr_len + 1u);
    rc = put(p, g.write_size, page + UNIT, (const uint8_t *)out->csr, (uint32_t)csr_len + 1u);
    if (rc == 0 && key_len > 0) {
        rc = put(p, g.write_size, page + key_off, scratch, (uint32_t)key_len);
    }
    if (rc != 0) {
        return rc;
    }
    uint32_t h = fnv1a(2166136261u, (const uint8_t *)serial, strlen(serial));
    h = fnv1a(h, (const uint8_t *)out->csr, csr_len);
    h = fnv1a(h, scratch, key_len);
    uint8_t head[UNIT];
    memset(head, 0xFF, sizeof head);
    memcpy(head, MAGIC, sizeof MAGIC);
    head[4] = (uint8_t)csr_len;
    head[5] = (uint8_t)(csr_len >> 8);
    head[6] = (uint8_t)key_len;
    head[7] = (uint8_t)(key_len >> 8);
    for (int i = 0; i < 4; i++) {
        head[8 + i] = (uint8_t)(h >> (8 * i));
    }
    rc = put(p, g.write_size, page, head, UNIT);
    if (rc != 0) {
        return rc;
    }
    /* Read it back: what is used from now on is what flash holds. */
    rc = load(p, page, page_size, serial, out);
    if (rc != 0) {
        return rc == -ENOENT ? -EIO : rc;
    }
    out->created = true;
    return 0;
}
