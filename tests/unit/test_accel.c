/* test_accel.c - accelerator choice against fake sysfs trees. /dev/null
 * stands in for a /dev/kvm that opens but does not answer KVM ioctls. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/accel.h"
#include "test.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

static char *tree(const char *tmp, const char *name, const char *const modules[])
{
    char *root = xasprintf("%s/%s", tmp, name);
    char *mod = xasprintf("%s/sys/module", root);
    qvm_mkdir_p(mod, 0755, NULL);
    for (size_t i = 0; modules[i]; i++) {
        char *m = xasprintf("%s/%s", mod, modules[i]);
        mkdir(m, 0755);
        free(m);
    }
    free(mod);
    return root;
}

int main(void)
{
    char tmpl[] = "/tmp/qvm-test-accel.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    CHECK(tmp != NULL, "temporary directory");
    if (!tmp)
        return test_done();

    char *pvm = tree(tmp, "pvm", (const char *const[]){ "kvm", "kvm_pvm", NULL });
    char *intel = tree(tmp, "intel", (const char *const[]){ "kvm", "kvm_intel", NULL });
    char *amd = tree(tmp, "amd", (const char *const[]){ "kvm", "kvm_amd", NULL });
    char *bare = tree(tmp, "bare", (const char *const[]){ "kvm", NULL });
    char *missing = xasprintf("%s/no-such-kvm", tmp);

    struct qvm_error err = { 0 };
    const char *accel = NULL;
    char note[256];

    /* tcg asked for: no probing, no note. */
    struct qvm_accel_probe p = { .sysfs_root = pvm, .dev_kvm = "/dev/null" };
    memset(note, 'x', sizeof note);
    int r = qvm_accel_resolve("tcg", &p, &accel, note, sizeof note, &err);
    CHECK(r == 0, "tcg resolves");
    CHECK_STR(accel, "tcg", "tcg -> tcg");
    CHECK_STR(note, "", "no note for an explicit tcg");

    /* kvm_pvm only: the paravirtual nested case. */
    r = qvm_accel_resolve("auto", &p, &accel, note, sizeof note, &err);
    CHECK(r == 0, "auto with kvm_pvm resolves");
    CHECK_STR(accel, "tcg", "auto with kvm_pvm -> tcg");
    CHECK_STR(note, "KVM here is paravirtual nested (kvm_pvm) and cannot run an ordinary guest; "
                    "using TCG (software emulation, slower)", "kvm_pvm note");
    qvm_err_clear(&err);
    r = qvm_accel_resolve("kvm", &p, &accel, note, sizeof note, &err);
    CHECK(r == -ENODEV, "kvm requested with kvm_pvm only fails (r=%d)", r);
    CHECK_STR(err.msg, "cannot use KVM: KVM here is paravirtual nested (kvm_pvm) and cannot run "
                       "an ordinary guest", "kvm_pvm error says why");

    /* No /dev/kvm at all. */
    p = (struct qvm_accel_probe){ .sysfs_root = intel, .dev_kvm = missing };
    r = qvm_accel_resolve("auto", &p, &accel, note, sizeof note, &err);
    CHECK(r == 0 && strcmp(accel, "tcg") == 0, "auto without /dev/kvm -> tcg");
    char *want = xasprintf("no %s; using TCG", missing);
    CHECK_CONTAINS(note, want, "note: no device; using TCG");
    free(want);
    qvm_err_clear(&err);
    r = qvm_accel_resolve("kvm", &p, &accel, note, sizeof note, &err);
    CHECK(r == -ENODEV, "kvm requested without /dev/kvm fails");
    CHECK_CONTAINS(err.msg, "cannot use KVM: no ", "error names the missing device");

    /* The default device path is named as /dev/kvm in the note. */
    p = (struct qvm_accel_probe){ .sysfs_root = intel, .dev_kvm = NULL };
    if (access("/dev/kvm", F_OK) != 0) {
        r = qvm_accel_resolve("auto", &p, &accel, note, sizeof note, &err);
        CHECK_STR(note, "no /dev/kvm; using TCG (software emulation, slower)",
                  "note without /dev/kvm on this host");
    } else {
        printf("ok %d # SKIP /dev/kvm exists on this host\n", ++test_n);
    }

    /* A device that opens but is not KVM (the ioctl fails), hardware modules present. */
    const char *hw[] = { intel, amd };
    for (int i = 0; i < 2; i++) {
        p = (struct qvm_accel_probe){ .sysfs_root = hw[i], .dev_kvm = "/dev/null" };
        r = qvm_accel_resolve("auto", &p, &accel, note, sizeof note, &err);
        CHECK(r == 0 && strcmp(accel, "tcg") == 0, "%s tree, /dev/null: auto -> tcg",
              i ? "kvm_amd" : "kvm_intel");
        CHECK_CONTAINS(note, "/dev/null does not answer KVM_GET_API_VERSION",
                       "note says the ioctl failed");
        CHECK_CONTAINS(note, "; using TCG", "note says TCG");
        qvm_err_clear(&err);
        r = qvm_accel_resolve("kvm", &p, &accel, note, sizeof note, &err);
        CHECK(r == -ENODEV, "kvm requested on a non-KVM device fails");
        CHECK_CONTAINS(err.msg, "cannot use KVM: /dev/null does not answer KVM_GET_API_VERSION",
                       "error says why");
    }

    /* kvm module alone, no hardware module and no kvm_pvm. */
    p = (struct qvm_accel_probe){ .sysfs_root = bare, .dev_kvm = "/dev/null" };
    r = qvm_accel_resolve("auto", &p, &accel, note, sizeof note, &err);
    CHECK(r == 0 && strcmp(accel, "tcg") == 0, "no hardware module: auto -> tcg");
    CHECK_CONTAINS(note, "no hardware KVM module (kvm_intel or kvm_amd) is loaded",
                   "note names the missing modules");

    /* Unknown accelerator, NULL note buffer, NULL requested. */
    qvm_err_clear(&err);
    r = qvm_accel_resolve("hvf", &p, &accel, note, sizeof note, &err);
    CHECK(r == -EINVAL, "unknown accelerator is EINVAL");
    CHECK_STR(err.msg, "unknown accelerator 'hvf' (expected auto, kvm or tcg)", "and says so");
    r = qvm_accel_resolve(NULL, &p, &accel, NULL, 0, NULL);
    CHECK(r == 0 && strcmp(accel, "tcg") == 0, "NULL requested means auto; NULL note is fine");

    /* The real host: this one exposes /dev/kvm through kvm_pvm only. */
    bool host_pvm = access("/sys/module/kvm_pvm", F_OK) == 0 &&
                    access("/sys/module/kvm_intel", F_OK) != 0 &&
                    access("/sys/module/kvm_amd", F_OK) != 0;
    if (host_pvm) {
        r = qvm_accel_resolve("auto", NULL, &accel, note, sizeof note, &err);
        CHECK(r == 0 && strcmp(accel, "tcg") == 0, "real host (kvm_pvm only): auto -> tcg");
        CHECK(note[0] != '\0', "real host: a note explains the fallback (%s)", note);
    } else {
        printf("ok %d # SKIP host is not a kvm_pvm-only host\n", ++test_n);
    }

    qvm_rm_rf(tmp, NULL);
    free(pvm);
    free(intel);
    free(amd);
    free(bare);
    free(missing);
    return test_done();
}
