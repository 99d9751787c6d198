/* seed.h - the cloud-init NoCloud seed: an ISO 9660 image with volume id
 * "cidata" (Joliet and Rock Ridge) holding user-data, meta-data and,
 * optionally, network-config. Written through libarchive, not by hand and
 * not by a subprocess. */
#ifndef QVM_SEED_H
#define QVM_SEED_H

#include "util/error.h"

/* Writes the seed to PATH atomically (a temporary file, then rename).
 * NETWORK_CONFIG may be NULL. */
int qvm_seed_write(const char *path, const char *user_data, const char *meta_data,
                   const char *network_config, struct qvm_error *err);

#endif
