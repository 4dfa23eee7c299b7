/*
 * The device key and CSR record (app/core/cpa_keys.c) on the Linux app's NOR-in-a-file, with
 * the real OpenSSL key generation (app/linux/keygen_openssl.c) and with a counting stand-in
 * generator where the test needs to know how often a key was made.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cpa_keys.h"
#include "flash_file.h"
#include "keygen_openssl.h"

CHECK_STATE;

#define PAGE 4096u
#define PAGES 3u
#define KEY_PAGE (1u * PAGE)
#define SERIAL "352656100000041"

static char path[64];
static struct flash_file flash;
static chunkprov_platform platform;
static uint8_t scratch[CPA_KEY_MAX];
static struct cpa_keys keys;

/* The platform with its write callback failing from the `fail_at`-th write on (0: never). */
static uint32_t writes, fail_at;
static int (*real_write)(void *, uint32_t, const uint8_t *, uint32_t);

static int failing_write(void *ctx, uint32_t off, const uint8_t *buf, uint32_t len)
{
    writes++;
    if (fail_at != 0 && writes >= fail_at) {
        return -EIO;
    }
    return real_write(ctx, off, buf, len);
}

static void open_flash(uint32_t write_size)
{
    snprintf(path, sizeof path, "/tmp/cpa-keys-%d.flash", (int)getpid());
    unlink(path);
    CHECK_EQ(flash_file_open(&flash, path, PAGES, PAGE, write_size), 0);
    platform = flash_file_platform(&flash);
    real_write = platform.write;
    platform.write = failing_write;
    writes = 0;
    fail_at = 0;
}

static void close_flash(void)
{
    flash_file_close(&flash);
    unlink(path);
}

/* Stand-in generator: a fixed-shape CSR and key that name how many were made. */
static int made;

static int counting_keygen(void *ctx, const char *serial, char *csr, size_t csr_cap,
                           uint8_t *key, size_t key_cap, size_t *key_len)
{
    (void)ctx;
    made++;
    int n = snprintf(csr, csr_cap, "CSR-%s-%d", serial, made);
    CHECK(n > 0 && (size_t)n < csr_cap);
    n = snprintf((char *)key, key_cap, "-----BEGIN PRIVATE KEY-----\nKEY%d\n-----END PRIVATE KEY-----\n",
                 made);
    CHECK(n > 0 && (size_t)n < key_cap);
    *key_len = (size_t)n + 1;
    return 0;
}

/* A key that stays elsewhere (the nRF91 modem): only the CSR is kept. */
static int modem_keygen(void *ctx, const char *serial, char *csr, size_t csr_cap, uint8_t *key,
                        size_t key_cap, size_t *key_len)
{
    (void)ctx;
    (void)key;
    (void)key_cap;
    made++;
    snprintf(csr, csr_cap, "MODEMCSR-%s", serial);
    *key_len = 0;
    return 0;
}

static int open_keys(const char *serial, cpa_keygen_fn gen)
{
    return cpa_keys_open(&platform, KEY_PAGE, PAGE, serial, gen, NULL, scratch, sizeof scratch,
                         &keys);
}

/* Made once, then read back unchanged at every boot, with every write unit the library takes. */
static void made_once_then_kept(void)
{
    for (uint32_t ws = 1; ws <= 32; ws *= 2) {
        open_flash(ws);
        made = 0;
        CHECK_EQ(open_keys(SERIAL, counting_keygen), 0);
        CHECK(keys.created);
        CHECK(strcmp(keys.csr, "CSR-" SERIAL "-1") == 0);
        CHECK(keys.key.len > 0);
        CHECK(keys.key.offset >= KEY_PAGE && keys.key.offset + keys.key.len <= KEY_PAGE + PAGE);
        const uint8_t *k = flash_file_at(&flash, keys.key.offset, keys.key.len);
        CHECK(k != NULL && k[keys.key.len - 1] == 0 && strstr((const char *)k, "KEY1") != NULL);
        for (int boot = 0; boot < 3; boot++) {
            memset(&keys, 0, sizeof keys);
            CHECK_EQ(open_keys(SERIAL, counting_keygen), 0);
            CHECK(!keys.created);
            CHECK(strcmp(keys.csr, "CSR-" SERIAL "-1") == 0);
        }
        CHECK_EQ(made, 1);
        /* Nothing outside the key page was touched. */
        for (uint32_t i = 0; i < PAGE; i++) {
            CHECK_EQ(flash.mem[i], 0xFF);
            CHECK_EQ(flash.mem[2 * PAGE + i], 0xFF);
        }
        close_flash();
    }
}

/* A power cut at any write while the record is made leaves no record: the next boot makes a new
 * key, and from then on that one is kept. */
static void power_cut_while_writing(void)
{
    open_flash(4);
    made = 0;
    CHECK_EQ(open_keys(SERIAL, counting_keygen), 0);
    uint32_t total = writes;
    close_flash();
    CHECK(total >= 3);
    for (uint32_t cut = 1; cut <= total; cut++) {
        open_flash(4);
        made = 0;
        fail_at = cut;
        CHECK_EQ(open_keys(SERIAL, counting_keygen), -EIO);
        fail_at = 0;
        memset(&keys, 0, sizeof keys);
        CHECK_EQ(open_keys(SERIAL, counting_keygen), 0);
        CHECK(keys.created);
        CHECK(strcmp(keys.csr, "CSR-" SERIAL "-2") == 0);
        CHECK_EQ(open_keys(SERIAL, counting_keygen), 0);
        CHECK(!keys.created);
        CHECK_EQ(made, 2);
        close_flash();
    }
}

/* Another serial, or a damaged record, makes a new key. */
static void other_serial_or_damage(void)
{
    open_flash(4);
    made = 0;
    CHECK_EQ(open_keys(SERIAL, counting_keygen), 0);
    CHECK_EQ(open_keys("352656100000042", counting_keygen), 0);
    CHECK(keys.created);
    CHECK(strcmp(keys.csr, "CSR-352656100000042-2") == 0);
    /* Flip a bit of the CSR (NOR can only clear bits). */
    flash.mem[KEY_PAGE + 32] &= 0xFE;
    CHECK_EQ(open_keys("352656100000042", counting_keygen), 0);
    CHECK(keys.created);
    CHECK_EQ(made, 3);
    close_flash();
}

/* The modem keeps the key: only the CSR is recorded. */
static void key_kept_elsewhere(void)
{
    open_flash(4);
    made = 0;
    CHECK_EQ(open_keys(SERIAL, modem_keygen), 0);
    CHECK_EQ(keys.key.len, 0);
    CHECK_EQ(open_keys(SERIAL, modem_keygen), 0);
    CHECK(!keys.created);
    CHECK(strcmp(keys.csr, "MODEMCSR-" SERIAL) == 0);
    CHECK_EQ(made, 1);
    close_flash();
}

/* Bad arguments are refused before flash is touched. */
static void bad_arguments(void)
{
    open_flash(4);
    CHECK_EQ(cpa_keys_open(NULL, KEY_PAGE, PAGE, SERIAL, counting_keygen, NULL, scratch,
                           sizeof scratch, &keys),
             -EINVAL);
    CHECK_EQ(cpa_keys_open(&platform, KEY_PAGE, 1024, SERIAL, counting_keygen, NULL, scratch,
                           sizeof scratch, &keys),
             -EINVAL);
    CHECK_EQ(cpa_keys_open(&platform, KEY_PAGE + 4, PAGE, SERIAL, counting_keygen, NULL, scratch,
                           sizeof scratch, &keys),
             -EINVAL);
    CHECK_EQ(cpa_keys_open(&platform, KEY_PAGE, PAGE, SERIAL, counting_keygen, NULL, scratch, 16,
                           &keys),
             -EINVAL);
    CHECK_EQ(writes, 0);
    close_flash();
}

/* The flash file keeps NOR's rules: a write needs erased, aligned bytes; erase is by page. */
static void nor_rules(void)
{
    open_flash(4);
    const uint8_t four[4] = {1, 2, 3, 4};
    CHECK_EQ(real_write(&flash, 0, four, 4), 0);
    CHECK_EQ(real_write(&flash, 0, four, 4), -EIO);     /* written twice */
    CHECK_EQ(real_write(&flash, 2, four, 4), -EINVAL);  /* misaligned */
    CHECK_EQ(real_write(&flash, 4, four, 3), -EINVAL);  /* not whole units */
    CHECK_EQ(real_write(&flash, PAGES * PAGE - 4, four, 8), -EINVAL); /* past the end */
    CHECK_EQ(platform.erase(&flash, 0, 100), -EINVAL);  /* not a whole page */
    CHECK_EQ(platform.erase(&flash, 0, PAGE), 0);
    CHECK_EQ(flash.mem[0], 0xFF);
    CHECK_EQ(real_write(&flash, 0, four, 4), 0);
    close_flash();
    /* An existing file of another size is refused, not resized. */
    open_flash(4);
    flash_file_close(&flash);
    CHECK(flash_file_open(&flash, path, PAGES + 1, PAGE, 4) < 0);
    unlink(path);
}

/* The real generator: a CSR OpenSSL parses, signed by the key kept in flash, CN = serial. */
static void openssl_csr_matches_key(void)
{
    open_flash(4);
    CHECK_EQ(open_keys(SERIAL, keygen_openssl), 0);
    /* base64url -> DER */
    static uint8_t der[1024];
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *c = keys.csr; *c; c++) {
        const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const char *at = strchr(abc, *c);
        CHECK(at != NULL);
        acc = acc << 6 | (uint32_t)(at - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            CHECK(n < sizeof der);
            der[n++] = (uint8_t)(acc >> bits);
        }
    }
    const unsigned char *p = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)n);
    CHECK(req != NULL);
    const uint8_t *kp = flash_file_at(&flash, keys.key.offset, keys.key.len);
    BIO *b = BIO_new_mem_buf(kp, (int)keys.key.len - 1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    CHECK(k != NULL);
    CHECK_EQ(X509_REQ_verify(req, k), 1);
    char cn[64];
    CHECK(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn,
                                    sizeof cn) > 0);
    CHECK(strcmp(cn, SERIAL) == 0);
    EVP_PKEY_free(k);
    X509_REQ_free(req);
    close_flash();
}

int main(void)
{
    RUN(made_once_then_kept);
    RUN(power_cut_while_writing);
    RUN(other_serial_or_damage);
    RUN(key_kept_elsewhere);
    RUN(bad_arguments);
    RUN(nor_rules);
    RUN(openssl_csr_matches_key);
    CHECK_MAIN_END();
}
