// File-system calls that Swift's Glibc module does not export.
#define _GNU_SOURCE
#include "alloy_io.h"
#include <errno.h>
#include <fcntl.h>

int alloy_start_writeback(int fd, int64_t offset, int64_t count) {
#ifdef SYNC_FILE_RANGE_WRITE
    return sync_file_range(fd, (off_t)offset, (off_t)count, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : errno;
#else
    (void)fd; (void)offset; (void)count;
    return ENOSYS;
#endif
}
