#include "paths.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "strbuf.h"

int qvm_paths_init(struct qvm_paths *p, const char *root_override, struct qvm_error *err)
{
    memset(p, 0, sizeof *p);
    const char *root = root_override ? root_override : getenv("QVM_ROOT");
    if (!root || !*root)
        root = "";
    if (*root && root[0] != '/')
        return qvm_err(err, EINVAL, "QVM root '%s' must be an absolute path", root);
    if (strlen(root) > 200)
        return qvm_err(err, ENAMETOOLONG, "QVM root '%.60s...' is longer than 200 characters", root);
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (n == 1 && root[0] == '/')
        n = 0;
    p->root = xmalloc(n + 1);
    memcpy(p->root, root, n);
    p->root[n] = '\0';
    p->conf_file = xasprintf("%s/etc/qvm/qvm.conf", p->root);
    p->state_dir = xasprintf("%s/var/lib/qvm", p->root);
    p->pools_dir = xasprintf("%s/var/lib/qvm/pools", p->root);
    p->journal_dir = xasprintf("%s/var/lib/qvm/journal", p->root);
    p->run_dir = xasprintf("%s/run/qvm", p->root);
    p->lock_dir = xasprintf("%s/run/qvm/locks", p->root);
    return 0;
}

void qvm_paths_release(struct qvm_paths *p)
{
    free(p->root);
    free(p->conf_file);
    free(p->state_dir);
    free(p->pools_dir);
    free(p->journal_dir);
    free(p->run_dir);
    free(p->lock_dir);
    memset(p, 0, sizeof *p);
}

int qvm_paths_ensure(const struct qvm_paths *p, struct qvm_error *err)
{
    const char *dirs[] = { p->state_dir, p->pools_dir, p->journal_dir, p->run_dir, p->lock_dir };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        int r = qvm_mkdir_p(dirs[i], 0755, err);
        if (r < 0)
            return r;
    }
    return 0;
}

char *qvm_paths_vm_run_dir(const struct qvm_paths *p, const char *vm)
{
    return xasprintf("%s/vms/%s", p->run_dir, vm);
}
