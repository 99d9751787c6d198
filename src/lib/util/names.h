/* names.h - validation of every name a user gives qvm (VMs, images, pools,
 * versions). Checked once, at the edge, so that no user string reaches a
 * path or an argv unchecked. */
#ifndef QVM_NAMES_H
#define QVM_NAMES_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define QVM_NAME_MAX 63

/* [a-z0-9][a-z0-9._-]{0,62}, and not ending in ".tmp"-like reserved forms
 * (no "..", no trailing '.') so it is always a safe single path component. */
bool qvm_name_valid(const char *name);

/* Fills ERR with "invalid KIND name 'NAME': why" and returns -EINVAL. */
int qvm_name_check(const char *kind, const char *name, struct qvm_error *err);

/* Parses "NAME", "NAME@vN" or "NAME@base" into the image name and the
 * version ("" when none was given; "base" is returned as "v1").
 * Buffers are QVM_NAME_MAX+1 bytes. */
int qvm_image_ref_parse(const char *ref, char *ret_image, char *ret_version,
                        struct qvm_error *err);

/* FNV-1a of S, continuing from H (start with QVM_FNV1A_INIT): stable
 * across hosts, for names derived from names (MACs, tap devices, leases). */
#define QVM_FNV1A_INIT 2166136261u
uint32_t qvm_fnv1a(uint32_t h, const char *s);

/* "52:54:00:12:34:56": six lower- or upper-case hex octets with colons, a
 * unicast address, not all zero (what the spec accepts, also on load). */
bool qvm_mac_valid(const char *mac);

/* A bridge or libvirt network name as the spec accepts it:
 * [A-Za-z0-9._-], 1 to 64 bytes. */
bool qvm_netsource_valid(const char *name);

#endif
