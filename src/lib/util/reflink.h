/* reflink.h - copy-on-write file copies (ioctl FICLONE), where the file
 * system shares extents between files: XFS (mkfs'd with reflink=1, the
 * default since xfsprogs 5.1) and Btrfs. A reflink copy costs the same for
 * 64 MiB and 64 GiB, keeps holes as holes, and the two files diverge block
 * by block as either is written. */
#ifndef QVM_UTIL_REFLINK_H
#define QVM_UTIL_REFLINK_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/error.h"

/* True if files created in directory DIR can be reflink-copied. Probes with
 * two unnamed O_TMPFILE files, so it leaves nothing behind. */
bool qvm_reflink_supported(const char *dir);

/* Creates DST (which must not exist) with MODE as a reflink copy of SRC and
 * syncs it. -EOPNOTSUPP (or -EXDEV across file systems) with a message when
 * the file system cannot; DST is then removed again. */
int qvm_reflink_new(const char *src, const char *dst, mode_t mode, struct qvm_error *err);

#endif
