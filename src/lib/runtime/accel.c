/* accel.c - KVM or TCG (see accel.h). Reads /dev/kvm and sysfs only; starts
 * nothing. */
#include "accel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/fsutil.h"

#define KVM_EXPECTED_API 12   /* stable since Linux 2.6.22 */
#define TCG_SUFFIX "; using TCG (software emulation, slower)"

static bool module_loaded(const char *sysfs_root, const char *module)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/sys/module/%s", sysfs_root, module);
    return qvm_path_exists(path);
}

/* True if KVM can run an ordinary guest; otherwise fills WHY. */
static bool kvm_usable(const struct qvm_accel_probe *probe, char *why, size_t why_len)
{
    const char *root = probe && probe->sysfs_root ? probe->sysfs_root : "";
    const char *dev = probe && probe->dev_kvm ? probe->dev_kvm : "/dev/kvm";

    int fd = open(dev, O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            snprintf(why, why_len, "no %s", dev);
        else
            snprintf(why, why_len, "cannot open %s: %s", dev, strerror(errno));
        return false;
    }
    bool hw = module_loaded(root, "kvm_intel") || module_loaded(root, "kvm_amd");
    if (!hw && module_loaded(root, "kvm_pvm")) {
        close(fd);
        snprintf(why, why_len, "KVM here is paravirtual nested (kvm_pvm) and cannot run an "
                 "ordinary guest");
        return false;
    }
    if (!hw) {
        close(fd);
        snprintf(why, why_len, "%s exists but no hardware KVM module (kvm_intel or kvm_amd) "
                 "is loaded", dev);
        return false;
    }
    int api = ioctl(fd, KVM_GET_API_VERSION, 0);
    int e = errno;
    close(fd);
    if (api < 0) {
        snprintf(why, why_len, "%s does not answer KVM_GET_API_VERSION: %s", dev, strerror(e));
        return false;
    }
    if (api != KVM_EXPECTED_API) {
        snprintf(why, why_len, "%s speaks KVM API version %d, not %d", dev, api,
                 KVM_EXPECTED_API);
        return false;
    }
    return true;
}

int qvm_accel_resolve(const char *requested, const struct qvm_accel_probe *probe,
                      const char **ret_accel, char *ret_note, size_t note_len,
                      struct qvm_error *err)
{
    if (ret_note && note_len)
        ret_note[0] = '\0';
    if (!requested)
        requested = "auto";
    if (strcmp(requested, "tcg") == 0) {
        *ret_accel = "tcg";
        return 0;
    }
    if (strcmp(requested, "auto") != 0 && strcmp(requested, "kvm") != 0)
        return qvm_err(err, EINVAL, "unknown accelerator '%s' (expected auto, kvm or tcg)",
                       requested);

    char why[512];
    if (kvm_usable(probe, why, sizeof why)) {
        *ret_accel = "kvm";
        return 0;
    }
    if (strcmp(requested, "kvm") == 0)
        return qvm_err(err, ENODEV, "cannot use KVM: %s", why);
    *ret_accel = "tcg";
    if (ret_note && note_len)
        snprintf(ret_note, note_len, "%s" TCG_SUFFIX, why);
    return 0;
}
