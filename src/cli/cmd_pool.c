/* cmd_pool.c - qvm pool add|ls|rm */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/pools.h"

static int pool_add(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "driver", required_argument, NULL, 'd' },
        { "path", required_argument, NULL, 'p' },
        { "dataset", required_argument, NULL, 's' },
        { "mode", required_argument, NULL, 'm' },
        { "default", no_argument, NULL, 'D' },
        { "runtime", required_argument, NULL, 'r' },
        { "runtime-uri", required_argument, NULL, 'u' },
        CLI_COMMON_OPTIONS, { 0 },
    };
    struct qvm_pool_config pc = { 0 };
    bool make_default = false;
    int c;
    while ((c = getopt_long(argc, argv, "d:p:", opts, NULL)) != -1) {
        switch (c) {
        case 'd': pc.driver = optarg; break;
        case 'p': pc.path = optarg; break;
        case 's': pc.dataset = optarg; break;
        case 'm': pc.mode = optarg; break;
        case 'D': make_default = true; break;
        case 'r': pc.runtime = optarg; break;
        case 'u': pc.runtime_uri = optarg; break;
        default:
            if (!cli_common_option(cli, c, optarg))
                return cli_usage(&cmd_pool, "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_pool, "add needs one pool NAME");
    if (!pc.driver)
        return cli_usage(&cmd_pool, "add needs --driver zfs|btrfs|dir");
    if (pc.runtime && strcmp(pc.runtime, "qemu") && strcmp(pc.runtime, "libvirt") &&
        strcmp(pc.runtime, "virt-install"))
        return cli_usage(&cmd_pool, "--runtime takes qemu, libvirt or virt-install");
    pc.name = argv[optind];
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_pool_add(&cli->ctx, &pc, make_default, &err);
    if (r == 0)
        qvm_say(&cli->ui, "Pool '%s' (%s) added%s", pc.name, pc.driver,
                make_default ? " as the default pool" : "");
    cli_close(cli);
    return r < 0 ? cli_fail("adding pool", &err) : 0;
}

static int pool_ls(struct cli *cli, int argc, char **argv)
{
    int nargs = cli_operand_count(cli, argc, argv);
    if (nargs < 0)
        return cli_usage(&cmd_pool, "unknown option");
    if (nargs != 0)
        return cli_usage(&cmd_pool, "ls takes no arguments");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_config cfg;
    if (qvm_config_load(&cli->ctx.paths, &cfg, &err) < 0) {
        cli_close(cli);
        return cli_fail("listing pools", &err);
    }
    json_object *arr = cli->json ? json_object_new_array() : NULL;
    if (!arr)
        printf("%-16s %-6s %-8s %-8s %s\n", "NAME", "DRIVER", "DEFAULT", "STATE", "LOCATION");
    for (size_t i = 0; i < cfg.npools; i++) {
        const struct qvm_pool_config *pc = &cfg.pools[i];
        struct qvm_pool pool;
        struct qvm_error e = { 0 };
        bool ok = qvm_pool_open(pc->name, pc->driver, pc->path, pc->dataset, pc->mode, &pool, &e) == 0;
        bool dflt = strcmp(pc->name, cfg.default_pool) == 0;
        const char *where = pc->dataset ? pc->dataset : pc->path ? pc->path : "";
        if (arr) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(pc->name));
            json_object_object_add(o, "driver", json_object_new_string(pc->driver));
            json_object_object_add(o, "default", json_object_new_boolean(dflt));
            if (pc->path)
                json_object_object_add(o, "path", json_object_new_string(pc->path));
            if (pc->dataset)
                json_object_object_add(o, "dataset", json_object_new_string(pc->dataset));
            if (pc->mode)
                json_object_object_add(o, "mode", json_object_new_string(pc->mode));
            if (pc->runtime)
                json_object_object_add(o, "runtime", json_object_new_string(pc->runtime));
            if (pc->runtime_uri)
                json_object_object_add(o, "runtime_uri", json_object_new_string(pc->runtime_uri));
            json_object_object_add(o, "online", json_object_new_boolean(ok));
            if (ok)
                json_object_object_add(o, "mountpoint", json_object_new_string(pool.path));
            else
                json_object_object_add(o, "error", json_object_new_string(e.msg));
            json_object_array_add(arr, o);
        } else {
            printf("%-16s %-6s %-8s %-8s %s%s%s\n", pc->name, pc->driver, dflt ? "yes" : "",
                   ok ? "online" : "offline", where, ok ? "" : "  # ", ok ? "" : e.msg);
        }
        if (ok)
            qvm_pool_release(&pool);
    }
    if (arr)
        cli_print_json(arr);
    qvm_config_release(&cfg);
    cli_close(cli);
    return 0;
}

static int pool_rm(struct cli *cli, int argc, char **argv)
{
    int nargs = cli_operand_count(cli, argc, argv);
    if (nargs < 0)
        return cli_usage(&cmd_pool, "unknown option");
    if (nargs != 1)
        return cli_usage(&cmd_pool, "rm needs one pool NAME");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_pool_remove(&cli->ctx, argv[optind], &err);
    if (r == 0)
        qvm_say(&cli->ui, "Pool '%s' removed from the configuration (its data is untouched)",
                argv[optind]);
    cli_close(cli);
    return r < 0 ? cli_fail("removing pool", &err) : 0;
}

static int run_pool(struct cli *cli, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage(&cmd_pool, "missing subcommand (add, ls or rm)");
    if (strcmp(argv[1], "add") == 0)
        return pool_add(cli, argc - 1, argv + 1);
    if (strcmp(argv[1], "ls") == 0 || strcmp(argv[1], "list") == 0)
        return pool_ls(cli, argc - 1, argv + 1);
    if (strcmp(argv[1], "rm") == 0)
        return pool_rm(cli, argc - 1, argv + 1);
    return cli_usage(&cmd_pool, "unknown subcommand '%s'", argv[1]);
}

const struct cli_command cmd_pool = {
    .name = "pool",
    .run = run_pool,
    .summary = "declare, list and forget storage pools (dir, btrfs, zfs)",
    .help =
        "Usage: qvm pool add NAME --driver dir --path DIR [--mode auto|reflink|overlay] [--default]\n"
        "       qvm pool add NAME --driver btrfs --path DIR [--default]\n"
        "       qvm pool add NAME --driver zfs --dataset POOL/DATASET [--mode dataset|zvol] [--default]\n"
        "       ... [--runtime qemu|libvirt|virt-install] [--runtime-uri URI]\n"
        "       qvm pool ls [--json]\n"
        "       qvm pool rm NAME\n"
        "\n"
        "A pool is where images and VM bundles live. Pools are declared in qvm.conf\n"
        "(/etc/qvm/qvm.conf, or ROOT/etc/qvm/qvm.conf with --root or QVM_ROOT); there\n"
        "is always a dir pool named 'default' under /var/lib/qvm/pools/default unless\n"
        "qvm.conf redefines it.\n"
        "\n"
        "Drivers:\n"
        "  dir    a plain directory holding sparse raw image versions. VM disks are\n"
        "         reflink copies of them (FICLONE: raw, no backing chain, nothing\n"
        "         copied until written) in mode 'reflink', qcow2 overlays backed by\n"
        "         them in mode 'overlay'; mode 'auto' (the default) uses reflinks\n"
        "         where the file system can (XFS made with reflink=1, Btrfs) and\n"
        "         overlays elsewhere (ext4). 'reflink' refuses a file system that\n"
        "         cannot.\n"
        "  btrfs  a directory on Btrfs: images and VMs are subvolumes, versions are\n"
        "         read-only snapshots, a VM disk is a snapshot (O(1) in the image size)\n"
        "  zfs    a ZFS dataset: in 'dataset' mode images are datasets holding a raw\n"
        "         file and VM disks are clones; in 'zvol' mode images are zvols\n"
        "         (volblocksize=16K, refreservation=none) and VM disks zvol clones\n"
        "\n"
        "qvm pool add checks the location with the driver and creates the pool's\n"
        "layout (images and vms) before writing qvm.conf; --default makes it the pool\n"
        "'qvm image import' and 'qvm up' use when none is named (--pool, disk.pool).\n"
        "qvm pool rm forgets a pool that holds no images or VMs; it never deletes data.\n"
        "\n"
        "--runtime sets the runtime of the VMs provisioned in the pool when neither\n"
        "'qvm up --runtime' nor the qvm file's vm.runtime says: qemu (the default),\n"
        "libvirt or virt-install; --runtime-uri their libvirt connection (default\n"
        "qemu:///system). See 'qvm up --help'.\n"
        "\n"
        "Examples:\n"
        "  qvm pool add tank --driver zfs --dataset tank/qvm --default\n"
        "  qvm pool add fast --driver btrfs --path /srv/qvm\n"
        "  qvm pool add xfs --driver dir --path /srv/xfs/qvm --mode reflink\n"
        "  qvm image import --pool fast debian12 debian-12-genericcloud-amd64.qcow2\n",
};
