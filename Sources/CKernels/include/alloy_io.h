#ifndef ALLOY_IO_H
#define ALLOY_IO_H
#include <stdint.h>

/// Starts writing bytes offset..<offset+count of the file `fd` to disk and returns without
/// waiting (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which Swift's Glibc module does not
/// export). 0 on success, else an errno value; ENOSYS where the call does not exist.
int alloy_start_writeback(int fd, int64_t offset, int64_t count);
#endif
