/*
 * NOR flash in a file, for the embedded-Linux app: the file is mapped into memory, so
 * credentials in it can be handed to TLS without copies (flash_file_at()). NOR rules are
 * enforced: erase sets whole pages to 0xFF, a write needs its bytes erased and aligned to the
 * write unit (the library never writes a unit twice between erases).
 */
#ifndef FLASH_FILE_H
#define FLASH_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "chunkprov.h"

struct flash_file {
    uint8_t *mem;
    uint32_t size;
    uint32_t write_size;
    uint32_t erase_size;
    int fd;
    /* Operations done (for figures and tests). */
    uint32_t reads, writes, erases, bytes_written;
};

/* Opens `path`, creating it erased with `pages` pages of `erase_size` bytes if it does not
 * exist. An existing file must have exactly that size. Returns 0 or a negative errno (and
 * writes a reason to stderr). */
int flash_file_open(struct flash_file *f, const char *path, uint32_t pages, uint32_t erase_size,
                    uint32_t write_size);
void flash_file_close(struct flash_file *f);

/* The platform callbacks over `f` (ctx = f). `log` and `random` are left to the caller. */
chunkprov_platform flash_file_platform(struct flash_file *f);

/* Where `len` bytes at `offset` lie in memory, or NULL when outside the file. */
const uint8_t *flash_file_at(const struct flash_file *f, uint32_t offset, uint32_t len);

#endif /* FLASH_FILE_H */
