/* size.c - disk sizes as `qvm resize` takes them and as disk.size records
 * them. Integer arithmetic only: a size is a whole number of MiB, and a
 * whole MiB is an exact decimal of GiB (1/1024 = 0.0009765625). */

#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)
#define MAX_BYTES (UINT64_C(65536) * GIB)   /* disk.size's own limit */

static int bad_size(const char *text, struct qvm_error *err)
{
    return qvm_err(err, EINVAL, "invalid size '%s': expected GiB as the qvm file writes "
                   "disk.size (20, 0.5) or a number with a unit (512M, 20G, 1.5T); "
                   "a leading + adds to the size now (+5G)", text);
}

int qvm_spec_parse_size(const char *text, uint64_t *ret_bytes, bool *ret_relative,
                        struct qvm_error *err)
{
    const char *p = text;
    bool relative = *p == '+';
    if (relative)
        p++;
    size_t ni = strspn(p, "0123456789"), nf = 0;
    if (p[ni] == '.')
        nf = strspn(p + ni + 1, "0123456789");
    const char *unit = p + ni + (p[ni] == '.' ? 1 + nf : 0);
    /* Ten fraction digits: enough for any whole MiB of GiB, and 10^10 times
     * a unit still fits the 128-bit product below. */
    if ((ni == 0 && nf == 0) || (p[ni] == '.' && nf == 0) || ni > 9 || nf > 10)
        return bad_size(text, err);
    uint64_t mult = GIB;
    if (*unit) {
        char u = (char)(*unit | 0x20);
        mult = u == 'm' ? MIB : u == 'g' ? GIB : u == 't' ? GIB << 10 : 0;
        const char *rest = unit + 1;
        if (!mult || !(strcmp(rest, "") == 0 || strcmp(rest, "iB") == 0 || strcmp(rest, "B") == 0))
            return bad_size(text, err);
    }
    uint64_t whole = 0, frac = 0, scale = 1;
    for (size_t i = 0; i < ni; i++)
        whole = whole * 10 + (uint64_t)(p[i] - '0');
    for (size_t i = 0; i < nf; i++) {
        frac = frac * 10 + (uint64_t)(p[ni + 1 + i] - '0');
        scale *= 10;
    }
    if (whole > MAX_BYTES / mult)
        return qvm_err(err, ERANGE, "size '%s' is too large (at most 65536 GiB)", text);
    unsigned __int128 part = ((unsigned __int128)frac * mult + scale - 1) / scale;
    unsigned __int128 bytes = (unsigned __int128)whole * mult + part;
    bytes = (bytes + MIB - 1) / MIB * MIB;
    if (bytes == 0)
        return qvm_err(err, ERANGE, "size '%s' is zero: a disk has at least 1 MiB%s", text,
                       relative ? " to grow by" : "");
    if (bytes > MAX_BYTES)
        return qvm_err(err, ERANGE, "size '%s' is too large (at most 65536 GiB)", text);
    *ret_bytes = (uint64_t)bytes;
    if (ret_relative)
        *ret_relative = relative;
    return 0;
}

void qvm_spec_format_gib(uint64_t bytes, char *buf, size_t size)
{
    bytes = (bytes + MIB - 1) / MIB * MIB;
    uint64_t whole = bytes / GIB, mib = (bytes % GIB) / MIB;
    if (mib == 0) {
        snprintf(buf, size, "%llu", (unsigned long long)whole);
        return;
    }
    /* mib/1024 GiB = mib * 9765625 / 10^10, exactly. */
    char frac[16];
    snprintf(frac, sizeof frac, "%010llu", (unsigned long long)(mib * UINT64_C(9765625)));
    for (size_t n = strlen(frac); n > 1 && frac[n - 1] == '0'; n--)
        frac[n - 1] = '\0';
    snprintf(buf, size, "%llu.%s", (unsigned long long)whole, frac);
}
