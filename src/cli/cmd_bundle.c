/* cmd_bundle.c - qvm export|import|scan: a VM as one self-describing
 * stream, and the bundles already in the pools. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/bundle.h"
#include "util/strbuf.h"

/* Export's stdout is the stream: its progress goes to stderr. */
static void say_stderr(struct qvm_ui *ui, const char *msg)
{
    (void)ui;
    fprintf(stderr, "%s\n", msg);
}

/* PATH made absolute: the journal that removes a half-written file may be
 * replayed by a qvm started elsewhere. */
static char *absolute(const char *path)
{
    if (path[0] == '/')
        return xstrdup(path);
    char *cwd = getcwd(NULL, 0);
    char *p = xasprintf("%s/%s", cwd ? cwd : ".", path);
    free(cwd);
    return p;
}

static int run_export(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "snapshot", required_argument, NULL, 's' },
        { "from", required_argument, NULL, 'F' },
        { "output", required_argument, NULL, 'o' },
        CLI_COMMON_OPTIONS, { 0 },
    };
    struct qvm_export_opts eo = { 0 };
    int c;
    while ((c = getopt_long(argc, argv, "s:o:", opts, NULL)) != -1) {
        switch (c) {
        case 's': eo.snapshot = optarg; break;
        case 'F': eo.from = optarg; break;
        case 'o': eo.output = optarg; break;
        default:
            if (!cli_common_option(cli, c, optarg))
                return cli_usage(&cmd_export, "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_export, argc - optind ? "too many arguments" : "missing NAME");
    if (eo.from && !eo.snapshot)
        return cli_usage(&cmd_export, "--from SNAP2 needs --snapshot SNAP (the newer state)");
    if (!eo.output && isatty(STDOUT_FILENO))
        return cli_usage(&cmd_export, "export writes a binary stream: redirect it to a file or "
                         "a pipe, or use --output FILE");
    char *out = eo.output ? absolute(eo.output) : NULL;
    eo.output = out;
    if (cli_open(cli)) {
        free(out);
        return 1;
    }
    if (!out && cli->ui.say)
        cli->ui.say = say_stderr;
    struct qvm_error err = { 0 };
    int r = qvm_vm_export(&cli->ctx, argv[optind], &eo, STDOUT_FILENO, &err);
    cli_close(cli);
    free(out);
    return r < 0 ? cli_fail("exporting virtual machine", &err) : 0;
}

static int run_import(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "name", required_argument, NULL, 'n' },
        { "pool", required_argument, NULL, 'p' },
        { "no-start", no_argument, NULL, 'S' },
        { "file", required_argument, NULL, 'f' },
        CLI_COMMON_OPTIONS, { 0 },
    };
    struct qvm_import_opts io = { 0 };
    const char *file = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "n:p:f:", opts, NULL)) != -1) {
        switch (c) {
        case 'n': io.name = optarg; break;
        case 'p': io.pool = optarg; break;
        case 'S': io.no_start = true; break;
        case 'f': file = optarg; break;
        default:
            if (!cli_common_option(cli, c, optarg))
                return cli_usage(&cmd_import, "unknown option");
        }
    }
    if (argc != optind)
        return cli_usage(&cmd_import, "import reads the bundle from stdin or --file and takes "
                         "no arguments");
    int fd = STDIN_FILENO;
    if (file && (fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
        struct qvm_error err = { 0 };
        qvm_err_errno(&err, errno, "cannot open %s", file);
        return cli_fail("importing virtual machine", &err);
    }
    if (!file && isatty(fd))
        return cli_usage(&cmd_import, "import reads a bundle on stdin: redirect a file or a "
                         "pipe, or use --file FILE");
    if (cli_open(cli)) {
        if (file)
            close(fd);
        return 1;
    }
    struct qvm_error err = { 0 };
    int r = qvm_vm_import(&cli->ctx, &io, fd, &err);
    if (file)
        close(fd);
    cli_close(cli);
    return r < 0 ? cli_fail("importing virtual machine", &err) : 0;
}

static int run_scan(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "pool", required_argument, NULL, 'p' }, CLI_COMMON_OPTIONS, { 0 },
    };
    const char *pool = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "p:", opts, NULL)) != -1) {
        if (c == 'p')
            pool = optarg;
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_scan, "unknown option");
    }
    if (argc != optind)
        return cli_usage(&cmd_scan, "scan takes no arguments");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_scan_entry *e;
    size_t n;
    int r = qvm_scan(&cli->ctx, pool, &e, &n, &err);
    cli_close(cli);
    if (r < 0)
        return cli_fail("scanning pools", &err);
    size_t refused = 0;
    for (size_t i = 0; i < n; i++)
        refused += !strcmp(e[i].status, "duplicate") || !strcmp(e[i].status, "invalid");
    if (cli->json) {
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "pool", json_object_new_string(e[i].pool));
            json_object_object_add(o, "name", json_object_new_string(e[i].name));
            json_object_object_add(o, "uuid", e[i].uuid ? json_object_new_string(e[i].uuid) : NULL);
            json_object_object_add(o, "status", json_object_new_string(e[i].status));
            json_object_object_add(o, "detail", e[i].detail ? json_object_new_string(e[i].detail) : NULL);
            json_object_array_add(arr, o);
        }
        cli_print_json(arr);
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%-12s %-20s %-10s %s\n", e[i].pool, e[i].name, e[i].status,
                   e[i].detail ? e[i].detail : "");
        if (!cli->quiet)
            printf("%zu bundle%s, %zu refused\n", n, n == 1 ? "" : "s", refused);
    }
    qvm_scan_free(e, n);
    if (refused) {
        qvm_err(&err, EINVAL, "%zu bundle%s not registered (see above)", refused,
                refused == 1 ? " was" : "s were");
        return cli_fail("scanning pools", &err);
    }
    return 0;
}

const struct cli_command cmd_export = {
    .name = "export",
    .run = run_export,
    .summary = "write a VM as one bundle stream (definition, seed, disk)",
    .help =
        "Usage: qvm export [--snapshot SNAP [--from SNAP2]] [--output FILE] NAME > FILE\n"
        "\n"
        "Writes VM NAME as one self-describing stream: its definition (vm.json), the\n"
        "qvm file it came from, its cloud-init seed and its disk, compressed with\n"
        "zstd and ended by a SHA-256 checksum. The disk travels as raw blocks, holes\n"
        "left out, whatever the pool keeps it as (a qcow2 overlay, a btrfs subvolume,\n"
        "a zfs dataset), so 'qvm import' can recreate the VM on a pool of any driver\n"
        "on any host. The VM must be stopped; it stays locked while it is exported.\n"
        "\n"
        "Options:\n"
        "  -s, --snapshot SNAP  export snapshot SNAP instead of the live disk\n"
        "      --from SNAP2     with --snapshot: only the blocks that differ from\n"
        "                       snapshot SNAP2 (an incremental bundle, imported onto\n"
        "                       a VM that has SNAP2)\n"
        "  -o, --output FILE    write FILE (complete or not at all) instead of stdout\n"
        "\n"
        "Examples:\n"
        "  qvm export web1 > web1.qvmb\n"
        "  qvm export web1 | ssh host2 qvm import --pool tank\n",
};

const struct cli_command cmd_import = {
    .name = "import",
    .run = run_import,
    .summary = "recreate a VM from a bundle stream (qvm export)",
    .help =
        "Usage: qvm import [--name NEW] [--pool POOL] [--no-start] [--file FILE] < FILE\n"
        "\n"
        "Reads a bundle written by 'qvm export' and recreates the VM in POOL (default:\n"
        "the default pool), whatever driver the pool has: its disk is written the way\n"
        "the pool keeps disks. Then starts it, unless --no-start.\n"
        "\n"
        "The import is atomic: until the whole stream has arrived and its checksum\n"
        "matches, no VM exists, and a stream cut short, a damaged one, a full pool or\n"
        "an interrupted qvm leaves nothing behind. A VM of the same name, or the same\n"
        "VM (uuid) under another name, is never overwritten.\n"
        "\n"
        "The imported disk stands alone: it depends on no image on this host (vm.json\n"
        "records where it came from under 'origin').\n"
        "\n"
        "Options:\n"
        "  -n, --name NEW    import a copy named NEW: a new uuid, MAC address, host\n"
        "                    name and cloud-init instance-id, and a new seed, so\n"
        "                    cloud-init treats it as a new machine\n"
        "  -p, --pool POOL   the pool to create it in\n"
        "      --no-start    do not start it\n"
        "  -f, --file FILE   read FILE instead of stdin\n"
        "\n"
        "Examples:\n"
        "  qvm import < web1.qvmb\n"
        "  qvm import --name web2 --pool tank --file web1.qvmb\n",
};

const struct cli_command cmd_scan = {
    .name = "scan",
    .run = run_scan,
    .summary = "check and register the VM bundles found in the pools",
    .help =
        "Usage: qvm scan [--pool POOL] [--json]\n"
        "\n"
        "qvm knows a VM by its bundle: the directory (or btrfs subvolume, or zfs\n"
        "dataset) vms/NAME of a pool holding vm.json beside the seed and the disk. A\n"
        "bundle that arrived by other means (a replicated dataset, a received\n"
        "subvolume, a moved directory) still describes the host it came from; scan\n"
        "checks every bundle of every pool (or of POOL) and registers such bundles:\n"
        "it sets the pool name and the disk's format in vm.json to what this host\n"
        "has. Runtime paths (sockets, pid file) are derived from the name, never\n"
        "stored, so nothing else needs changing.\n"
        "\n"
        "Each bundle is reported as 'ok', 'registered' (with what was fixed),\n"
        "'invalid' (its disk or seed missing, a qcow2 overlay whose backing file this\n"
        "host has not, a directory whose name differs from the VM's) or 'duplicate'\n"
        "(the same VM name or uuid in two pools: reported, and neither is touched).\n"
        "Exit status 1 if any bundle was not registered.\n"
        "\n"
        "Options:\n"
        "  -p, --pool POOL   scan only POOL (duplicates are still judged host-wide)\n"
        "      --json        an array of objects with pool, name, uuid, status, detail\n",
};
