/* image.h - cloud images and their versions (seed 000 3.1.1, seed 001's
 * life cycle). An import creates the image and its first immutable version
 * v1 (also reachable as "base", the seed's @base); image.json beside the
 * version data records each version's uuid, time, parent, size and state. */
#ifndef QVM_CORE_IMAGE_H
#define QVM_CORE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/context.h"
#include "storage/storage.h"

#define QVM_IMAGE_JSON_MAX (1u << 20)

struct qvm_image_version {
    char *name;                /* v1, v2, ... */
    char *uuid;
    long long created;
    char *parent;              /* NULL for v1 */
    uint64_t size;             /* virtual size in bytes */
    char *state;               /* draft, unpublished, published, deprecated, retired */
    bool removed;              /* its data is gone (retired, no dependents left) */
};

struct qvm_image {
    char *name;
    char *pool;
    char *source;              /* the file it was imported from */
    struct qvm_image_version *versions;
    size_t nversions;
};

/* Imports FILE (raw or qcow2) as image NAME in POOL (NULL: default pool).
 * Atomic: on any failure nothing of the image remains (or the error names
 * what could not be removed). */
int qvm_image_import(struct qvm_ctx *ctx, const char *pool, const char *name, const char *file,
                     struct qvm_error *err);

/* Loads image NAME from whichever pool holds it (POOL if given). */
int qvm_image_load(struct qvm_ctx *ctx, const char *pool, const char *name,
                   struct qvm_image *ret, struct qvm_error *err);
void qvm_image_release(struct qvm_image *img);

/* Resolves "IMAGE", "IMAGE@vN" or "IMAGE@base" to a version that can be
 * cloned: the newest published one when no version is given. */
int qvm_image_resolve(struct qvm_ctx *ctx, const char *pool, const char *ref,
                      struct qvm_image *ret_image, const struct qvm_image_version **ret_version,
                      struct qvm_error *err);

/* As qvm_image_resolve; EDITING (qvm image edit) also takes draft and
 * deprecated versions, which take no ordinary VMs. */
int qvm_image_resolve_for(struct qvm_ctx *ctx, const char *pool, const char *ref, bool editing,
                          struct qvm_image *ret_image,
                          const struct qvm_image_version **ret_version, struct qvm_error *err);

/* image.json of IMAGE in POOL: read, and write atomically. */
int qvm_image_load_from(const struct qvm_pool *pool, const char *name, struct qvm_image *ret,
                        struct qvm_error *err);
int qvm_image_save(const struct qvm_pool *pool, const struct qvm_image *img,
                   struct qvm_error *err);

/* The VMs whose disks come from IMAGE (in POOL) at VERSION (NULL: any
 * version), as a sorted list of names (caller frees each and the array). */
int qvm_image_dependents(struct qvm_ctx *ctx, const char *pool, const char *image,
                         const char *version, char ***ret, size_t *ret_n, struct qvm_error *err);

/* Moves version REF ("IMAGE@vN") to STATE: published, unpublished,
 * deprecated or retired (seed 001's life cycle). Retiring frees the
 * version's data at once if no VM uses it, else when the last one goes. */
int qvm_image_set_state(struct qvm_ctx *ctx, const char *pool, const char *ref,
                        const char *state, struct qvm_error *err);

/* Removes IMAGE or IMAGE@vN. Refused, naming them, while VMs use it. */
int qvm_image_remove(struct qvm_ctx *ctx, const char *pool, const char *ref,
                     struct qvm_error *err);

/* Makes the next version of IMAGE from the disk of VM (stopped, in the
 * same pool), in state unpublished, with the version VM was cloned from as
 * its parent. Journaled like an import. */
int qvm_image_commit(struct qvm_ctx *ctx, const char *image, const char *vm,
                     struct qvm_error *err);

/* Frees the data of IMAGE's retired versions that no VM uses any more. */
void qvm_image_reap_retired(struct qvm_ctx *ctx, const char *pool, const char *image);

/* All images in all pools, sorted by name. */
int qvm_image_list(struct qvm_ctx *ctx, struct qvm_image **ret, size_t *ret_n,
                   struct qvm_error *err);

#endif
