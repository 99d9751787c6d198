/* cmd_edit.c - qvm edit|resize|autostart: changing a provisioned VM. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/autostart.h"
#include "core/edit.h"
#include "spec/spec.h"
#include "util/fsutil.h"
#include "util/strbuf.h"

#define TASK_EDIT "editing virtual machine"
#define MAX_SETS 64
#define SHUTDOWN_TIMEOUT_S 120

/* "Edit again? [Y/n]" on the terminal; true for yes. */
static bool ask_again(void)
{
    fputs("Edit again? [Y/n] ", stderr);
    fflush(stderr);
    char line[32];
    if (!fgets(line, sizeof line, stdin))
        return false;
    return line[0] == '\n' || line[0] == 'y' || line[0] == 'Y';
}

/* The interactive edit, as crontab -e: a private copy in the editor until
 * it is valid, the person gives up, or it cannot be asked (no terminal). */
static int edit_interactive(struct cli *cli, const char *name)
{
    struct qvm_error err = { 0 };
    char *stored = NULL, *path = NULL, *text = NULL;
    size_t stored_len = 0, len = 0;
    int status = 1;
    if (qvm_edit_load(&cli->ctx, name, &stored, &stored_len, &err) < 0 ||
        qvm_edit_tempfile(name, stored, stored_len, &path, &err) < 0)
        return cli_fail(TASK_EDIT, &err);
    bool keep = false;
    for (;;) {
        free(text);
        text = NULL;
        if (qvm_edit_run_editor(path, &err) < 0)
            break;
        if (qvm_read_file(path, QVM_SPEC_MAX_FILE, &text, &len, &err) < 0)
            break;
        if (len == stored_len && memcmp(text, stored, len) == 0) {
            if (!cli->quiet)
                printf("No changes to VM '%s'\n", name);
            status = 0;
            break;
        }
        struct qvm_edit_req req = { .text = text, .len = len, .filename = path,
                                    .expect = stored, .expect_len = stored_len };
        struct qvm_edit_result res;
        qvm_err_clear(&err);
        if (qvm_edit_apply(&cli->ctx, name, &req, &res, &err) == 0) {
            status = 0;
            break;
        }
        keep = true;
        if (!res.invalid || !isatty(STDIN_FILENO))
            break;
        cli_fail(TASK_EDIT, &err);
        if (!ask_again())
            break;
    }
    if (status != 0) {
        if (keep) {
            size_t l = strlen(err.msg);
            snprintf(err.msg + l, sizeof err.msg - l,
                     " (your edit is kept in %s; apply it with: qvm edit %s --file %s)",
                     path, name, path);
        }
        cli_fail(TASK_EDIT, &err);
    }
    if (!keep || status == 0)
        unlink(path);
    free(path);
    free(text);
    free(stored);
    return status;
}

static int run_edit(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "set", required_argument, NULL, 's' },
        { "file", required_argument, NULL, 'f' },
        CLI_COMMON_OPTIONS, { 0 },
    };
    const char *sets[MAX_SETS], *file = NULL;
    size_t nsets = 0;
    int c;
    while ((c = getopt_long(argc, argv, "s:f:", opts, NULL)) != -1) {
        if (c == 's') {
            if (nsets == MAX_SETS)
                return cli_usage(&cmd_edit, "at most %d --set options", MAX_SETS);
            sets[nsets++] = optarg;
        } else if (c == 'f') {
            file = optarg;
        } else if (!cli_common_option(cli, c, optarg)) {
            return cli_usage(&cmd_edit, "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_edit, "expected one VM name");
    const char *name = argv[optind];
    if (cli_open(cli))
        return 1;
    int status;
    if (!file && !nsets) {
        status = edit_interactive(cli, name);
    } else {
        struct qvm_error err = { 0 };
        struct qvm_edit_req req = { .sets = sets, .nsets = nsets, .filename = file };
        char *text = NULL;
        struct qvm_edit_result res;
        int r = 0;
        if (file)
            r = qvm_read_file(file, QVM_SPEC_MAX_FILE, &text, &req.len, &err);
        req.text = text;
        if (r == 0)
            r = qvm_edit_apply(&cli->ctx, name, &req, &res, &err);
        free(text);
        status = r < 0 ? cli_fail(TASK_EDIT, &err) : 0;
    }
    cli_close(cli);
    return status;
}

static int run_resize(struct cli *cli, int argc, char **argv)
{
    int nargs = cli_operand_count(cli, argc, argv);
    if (nargs < 0)
        return cli_usage(&cmd_resize, "unknown option");
    if (nargs != 3)
        return cli_usage(&cmd_resize, "expected a VM name, a disk name and a size");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_resize(&cli->ctx, argv[optind], argv[optind + 1], argv[optind + 2], &err);
    cli_close(cli);
    return r < 0 ? cli_fail("resizing disk", &err) : 0;
}

static const char *state_of(const struct qvm_autostart_result *a)
{
    return a->r < 0 && !a->autostart && !a->running ? "unknown" : a->running ? "running" : "stopped";
}

/* Prints RESULTS (ACTION: "started", "stopped" or NULL for a listing) and
 * the failures, each as an error line. Returns the exit status. */
static int report(struct cli *cli, struct qvm_autostart_result *v, size_t n, const char *action,
                  const char *task)
{
    int status = 0;
    json_object *arr = cli->json ? json_object_new_array() : NULL;
    if (!cli->json && !action)
        printf("%-24s %-10s %s\n", "NAME", "AUTOSTART", "STATE");
    for (size_t i = 0; i < n; i++) {
        struct qvm_autostart_result *a = &v[i];
        bool involved = !action || a->autostart || a->r < 0;
        if (arr && involved) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(a->name));
            json_object_object_add(o, "autostart", json_object_new_boolean(a->autostart));
            json_object_object_add(o, "state", json_object_new_string(state_of(a)));
            if (action)
                json_object_object_add(o, action, json_object_new_boolean(a->acted));
            json_object_object_add(o, "error", a->r < 0 ? json_object_new_string(a->err.msg) : NULL);
            json_object_array_add(arr, o);
        } else if (!action) {
            printf("%-24s %-10s %s\n", a->name, a->r < 0 ? "?" : a->autostart ? "on" : "off",
                   state_of(a));
        }
        if (a->r < 0) {
            char t[160];
            snprintf(t, sizeof t, "%s '%s'", task, a->name);
            a->err.task = NULL;
            status = cli_fail(t, &a->err);
        }
    }
    if (arr)
        cli_print_json(arr);
    return status;
}

static int run_autostart(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "boot", no_argument, NULL, 'b' },
        { "shutdown", no_argument, NULL, 'S' },
        { "timeout", required_argument, NULL, 't' },
        CLI_COMMON_OPTIONS, { 0 },
    };
    bool boot = false, shutdown = false;
    int timeout = SHUTDOWN_TIMEOUT_S, c;
    while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
        if (c == 'b') {
            boot = true;
        } else if (c == 'S') {
            shutdown = true;
        } else if (c == 't') {
            char *end;
            long t = strtol(optarg, &end, 10);
            if (*end || t < 0 || t > 86400)
                return cli_usage(&cmd_autostart, "--timeout takes seconds (0..86400), not '%s'",
                                 optarg);
            timeout = (int)t;
        } else if (!cli_common_option(cli, c, optarg)) {
            return cli_usage(&cmd_autostart, "unknown option");
        }
    }
    int nargs = argc - optind;
    if (boot && shutdown)
        return cli_usage(&cmd_autostart, "--boot and --shutdown exclude each other");
    if ((boot || shutdown) && nargs)
        return cli_usage(&cmd_autostart, "--boot and --shutdown take no VM name");
    if (nargs != 0 && nargs != 2)
        return cli_usage(&cmd_autostart, "expected a VM name and on or off");
    const char *name = nargs ? argv[optind] : NULL, *flag = nargs ? argv[optind + 1] : NULL;
    if (flag && strcmp(flag, "on") && strcmp(flag, "off"))
        return cli_usage(&cmd_autostart, "expected on or off, not '%s'", flag);
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_autostart_result *v = NULL;
    size_t n = 0;
    int status;
    if (name) {
        int r = qvm_autostart_set(&cli->ctx, name, strcmp(flag, "on") == 0, &err);
        status = r < 0 ? cli_fail("setting autostart", &err) : 0;
    } else if (boot || shutdown) {
        int r = boot ? qvm_autostart_boot(&cli->ctx, &v, &n, &err)
                     : qvm_autostart_shutdown(&cli->ctx, timeout, &v, &n, &err);
        status = r < 0 ? cli_fail(boot ? "starting autostart VMs" : "stopping autostart VMs", &err)
                       : report(cli, v, n, boot ? "started" : "stopped",
                                boot ? "starting virtual machine" : "stopping virtual machine");
    } else {
        int r = qvm_autostart_list(&cli->ctx, &v, &n, &err);
        status = r < 0 ? cli_fail("listing VMs", &err) : report(cli, v, n, NULL, "reading virtual machine");
    }
    qvm_autostart_results_free(v, n);
    cli_close(cli);
    return status;
}

const struct cli_command cmd_edit = {
    .name = "edit",
    .run = run_edit,
    .summary = "change a VM's memory, vCPUs, disk size or network (its qvm file)",
    .help =
        "Usage: qvm edit NAME\n"
        "       qvm edit [--set KEY=VALUE]... [--file NEW.yaml] NAME\n"
        "\n"
        "Changes VM NAME through the qvm file it was provisioned from (the copy kept\n"
        "in its bundle, vm.yaml). Without options, a private copy of it opens in\n"
        "$VISUAL, else $EDITOR, else vi (run directly, no shell: the variable is split\n"
        "into words). When the editor exits, the file is validated exactly as qvm up\n"
        "validates a qvm file; errors name FILE:LINE:COLUMN and the key. On a terminal\n"
        "you are asked whether to edit again; otherwise qvm exits 1 and keeps your\n"
        "edit, naming the file to apply with --file.\n"
        "\n"
        "What can change: memory, vcpus, cpu, machine, virt-type/accel, boot,\n"
        "graphics, network (type, model, mac, ssh-port), disk.bus, disk.cache,\n"
        "disk.size (larger only: the disk is grown as qvm resize grows it, at once)\n"
        "and autostart. These apply at the VM's next start; a running VM keeps its\n"
        "settings until then (qvm restart NAME). What cannot, and is refused with the\n"
        "reason: name, disk.pool, disk.zvol.base, disk.zvol.name and properties,\n"
        "a smaller disk.size, and the user-data, meta-data and network-config\n"
        "documents (cloud-init ran from them when the VM was provisioned). In a disk\n"
        "list, the image disk's size may grow; the data disks cannot change yet.\n"
        "\n"
        "On success vm.yaml and vm.json are replaced atomically (journaled: an\n"
        "interrupted edit is rolled back by the next qvm command).\n"
        "\n"
        "Options:\n"
        "  --set KEY=VALUE   set a key of the vm document, as written there\n"
        "                    (memory=2048, vcpus=2, disk.size=20, network.ssh-port=2222,\n"
        "                    autostart=true); repeatable; the rest of the file, comments\n"
        "                    included, is kept as written\n"
        "  --file NEW.yaml   the new qvm file (--set then applies to it)\n"
        "\n"
        "Examples:\n"
        "  qvm edit web1\n"
        "  qvm edit web1 --set memory=2048 --set vcpus=2 && qvm restart web1\n",
};

const struct cli_command cmd_resize = {
    .name = "resize",
    .run = run_resize,
    .summary = "grow a VM's disk (live if it runs)",
    .help =
        "Usage: qvm resize NAME DISK SIZE\n"
        "\n"
        "Grows disk DISK (disk0, or the qvm file's disk.zvol.name) of VM NAME to SIZE,\n"
        "or by SIZE with a leading '+'. SIZE is GiB as disk.size writes it (20, 0.5),\n"
        "or a number with a binary unit: 512M, 20G, 1.5T; it is rounded up to a whole\n"
        "MiB. Disks only grow: a smaller size is refused, naming both sizes. VMs\n"
        "with data disks (a disk list) are refused for now: grow their image disk\n"
        "with qvm edit.\n"
        "\n"
        "A stopped VM's disk is grown by its pool's driver: a raw file (dir reflink,\n"
        "btrfs, zfs dataset) gets a hole at its end, a qcow2 overlay a larger virtual\n"
        "size (qemu-img resize), a zvol a larger volsize. A running VM's disk is grown\n"
        "through QEMU (QMP block_resize), so the guest sees the new size at once.\n"
        "Either way no data is written: cloud-init's growpart and resize2fs grow the\n"
        "guest's partition and file system at its next boot. The new size is recorded\n"
        "in the VM's qvm file (disk.size) and vm.json, after the disk has it.\n"
        "\n"
        "Examples:\n"
        "  qvm resize web1 disk0 20G\n"
        "  qvm resize web1 disk0 +512M\n",
};

const struct cli_command cmd_autostart = {
    .name = "autostart",
    .run = run_autostart,
    .summary = "start marked VMs at host boot; mark or list them",
    .help =
        "Usage: qvm autostart [--json]\n"
        "       qvm autostart NAME on|off\n"
        "       qvm autostart --boot [--json]\n"
        "       qvm autostart --shutdown [--timeout SECONDS] [--json]\n"
        "\n"
        "A VM marked autostart (the vm document's 'autostart: true', kept in vm.json)\n"
        "is started when the host boots, by the systemd unit qvm-autostart.service\n"
        "(contrib/systemd/, installed with qvm).\n"
        "\n"
        "Without arguments, lists every VM with its flag and state. With NAME on|off,\n"
        "marks or unmarks VM NAME (its qvm file and vm.json, as qvm edit does).\n"
        "\n"
        "  --boot            start every VM marked autostart that is not running, one\n"
        "                    after the other; a VM that fails is reported and the\n"
        "                    others still start. Exit status 1 if any failed.\n"
        "  --shutdown        power off every running VM marked autostart, all at once,\n"
        "                    as qvm stop does (ACPI, then quit after the timeout)\n"
        "  --timeout SECONDS how long --shutdown waits for the guests (default 120)\n"
        "  --json            the VMs as an array of objects: name, autostart, state,\n"
        "                    started or stopped, error\n",
};
