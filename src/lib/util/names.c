#include "names.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

bool qvm_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > QVM_NAME_MAX)
        return false;
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    if (strstr(name, "..") || name[n - 1] == '.')
        return false;
    return true;
}

int qvm_name_check(const char *kind, const char *name, struct qvm_error *err)
{
    if (qvm_name_valid(name))
        return 0;
    size_t n = strlen(name);
    const char *why = n == 0 ? "it is empty"
                    : n > QVM_NAME_MAX ? "it is longer than 63 characters"
                    : "use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit";
    return qvm_err(err, EINVAL, "invalid %s name '%.80s': %s", kind, name, why);
}

static bool version_valid(const char *v)
{
    if (v[0] != 'v' || v[1] == '\0' || v[1] == '0' || strlen(v) > 10)
        return false;
    for (const char *p = v + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

int qvm_image_ref_parse(const char *ref, char *ret_image, char *ret_version,
                        struct qvm_error *err)
{
    const char *at = strchr(ref, '@');
    size_t n = at ? (size_t)(at - ref) : strlen(ref);
    if (n > QVM_NAME_MAX)
        return qvm_err(err, EINVAL, "invalid image name in '%.80s': longer than 63 characters", ref);
    char name[QVM_NAME_MAX + 1];
    memcpy(name, ref, n);
    name[n] = '\0';
    int r = qvm_name_check("image", name, err);
    if (r < 0)
        return r;
    const char *ver = at ? at + 1 : "";
    if (at && strcmp(ver, "base") == 0)
        ver = "v1";
    else if (at && !version_valid(ver))
        return qvm_err(err, EINVAL, "invalid image version '%.40s' in '%.80s': expected vN or base",
                       ver, ref);
    strcpy(ret_image, name);
    strcpy(ret_version, ver);
    return 0;
}

bool qvm_mac_valid(const char *mac)
{
    if (!mac || strlen(mac) != 17)
        return false;
    bool zero = true;
    for (size_t i = 0; i < 17; i++) {
        if (i % 3 == 2) {
            if (mac[i] != ':')
                return false;
        } else if (!strchr("0123456789abcdefABCDEF", mac[i]) || !mac[i]) {
            return false;
        } else if (mac[i] != '0') {
            zero = false;
        }
    }
    unsigned first = (unsigned)strtoul((char[]){ mac[0], mac[1], 0 }, NULL, 16);
    return !zero && !(first & 1);
}

bool qvm_netsource_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    return len > 0 && len <= 64 &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

uint32_t qvm_fnv1a(uint32_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}
