/*
 * NOR flash in a file (see flash_file.h).
 */
#define _GNU_SOURCE
#include "flash_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static bool in_range(const struct flash_file *f, uint32_t offset, uint32_t len)
{
    return offset <= f->size && len <= f->size - offset;
}

static int ff_read(void *ctx, uint32_t offset, uint8_t *buf, uint32_t len)
{
    struct flash_file *f = ctx;
    if (!in_range(f, offset, len)) {
        return -EINVAL;
    }
    f->reads++;
    memcpy(buf, f->mem + offset, len);
    return 0;
}

static int ff_write(void *ctx, uint32_t offset, const uint8_t *buf, uint32_t len)
{
    struct flash_file *f = ctx;
    if (!in_range(f, offset, len) || offset % f->write_size != 0 || len % f->write_size != 0) {
        return -EINVAL;
    }
    for (uint32_t i = 0; i < len; i++) {
        if (f->mem[offset + i] != 0xFF) {
            return -EIO; /* NOR: a unit is written once between erases */
        }
    }
    memcpy(f->mem + offset, buf, len);
    f->writes++;
    f->bytes_written += len;
    return 0;
}

static int ff_erase(void *ctx, uint32_t offset, uint32_t len)
{
    struct flash_file *f = ctx;
    if (!in_range(f, offset, len) || offset % f->erase_size != 0 || len % f->erase_size != 0) {
        return -EINVAL;
    }
    memset(f->mem + offset, 0xFF, len);
    f->erases += len / f->erase_size;
    return 0;
}

static int ff_geometry(void *ctx, chunkprov_geometry *out)
{
    struct flash_file *f = ctx;
    out->write_size = f->write_size;
    out->erase_size = f->erase_size;
    out->capacity = f->size;
    return 0;
}

chunkprov_platform flash_file_platform(struct flash_file *f)
{
    chunkprov_platform p;
    memset(&p, 0, sizeof p);
    p.ctx = f;
    p.read = ff_read;
    p.write = ff_write;
    p.erase = ff_erase;
    p.geometry = ff_geometry;
    return p;
}

const uint8_t *flash_file_at(const struct flash_file *f, uint32_t offset, uint32_t len)
{
    return in_range(f, offset, len) ? f->mem + offset : NULL;
}

int flash_file_open(struct flash_file *f, const char *path, uint32_t pages, uint32_t erase_size,
                    uint32_t write_size)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if (pages == 0 || erase_size == 0 || write_size == 0 || write_size > 32 ||
        (write_size & (write_size - 1)) != 0 || (erase_size & (erase_size - 1)) != 0 ||
        erase_size < write_size || pages > UINT32_MAX / erase_size) {
        fprintf(stderr, "flash: invalid geometry (%u pages of %u bytes, write unit %u)\n", pages,
                erase_size, write_size);
        return -EINVAL;
    }
    uint32_t size = pages * erase_size;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "flash: cannot open %s: %s\n", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    bool fresh = st.st_size == 0;
    if (!fresh && (uint64_t)st.st_size != size) {
        fprintf(stderr, "flash: %s holds %lld bytes, not the %u of %u pages of %u bytes\n", path,
                (long long)st.st_size, size, pages, erase_size);
        close(fd);
        return -EINVAL;
    }
    if (fresh && ftruncate(fd, size) != 0) {
        int e = errno;
        fprintf(stderr, "flash: cannot size %s: %s\n", path, strerror(e));
        close(fd);
        return -e;
    }
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
        int e = errno;
        fprintf(stderr, "flash: cannot map %s: %s\n", path, strerror(e));
        close(fd);
        return -e;
    }
    f->mem = mem;
    f->size = size;
    f->write_size = write_size;
    f->erase_size = erase_size;
    f->fd = fd;
    if (fresh) {
        memset(f->mem, 0xFF, size);
    }
    return 0;
}

void flash_file_close(struct flash_file *f)
{
    if (f->mem != NULL) {
        (void)msync(f->mem, f->size, MS_SYNC);
        (void)munmap(f->mem, f->size);
        f->mem = NULL;
    }
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
}
