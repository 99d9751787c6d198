/* cmd_snapshot.c - qvm snapshot [ls|rm], qvm revert, qvm clone */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/clone.h"
#include "core/snapshot.h"

static int snapshot_create(struct cli *cli, int argc, char **argv)
{
    int n = cli_operand_count(cli, argc, argv);
    if (n != 2)
        return cli_usage(&cmd_snapshot, n < 0 ? "unknown option" : "expected NAME and SNAP");
    const char *name = argv[optind], *snap = argv[optind + 1];
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_snapshot_create(&cli->ctx, name, snap, &err);
    if (r == 0 && cli->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "vm", json_object_new_string(name));
        json_object_object_add(o, "snapshot", json_object_new_string(snap));
        cli_print_json(o);
    }
    cli_close(cli);
    return r < 0 ? cli_fail("taking snapshot", &err) : 0;
}

static int snapshot_ls(struct cli *cli, int argc, char **argv)
{
    int n = cli_operand_count(cli, argc, argv);
    if (n != 1)
        return cli_usage(&cmd_snapshot, n < 0 ? "unknown option" : "ls needs one VM NAME");
    const char *name = argv[optind];
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_snapshot_info *v;
    size_t count;
    if (qvm_snapshot_list(&cli->ctx, name, &v, &count, &err) < 0) {
        cli_close(cli);
        return cli_fail("listing snapshots", &err);
    }
    if (cli->json) {
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < count; i++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(v[i].name));
            json_object_object_add(o, "created", json_object_new_int64(v[i].created));
            json_object_object_add(o, "size", v[i].size ?
                                   json_object_new_int64((int64_t)v[i].size) : NULL);
            json_object_array_add(arr, o);
        }
        cli_print_json(arr);
    } else {
        printf("%-24s %-20s %s\n", "SNAPSHOT", "CREATED (UTC)", "SIZE");
        for (size_t i = 0; i < count; i++) {
            char when[32], size[16] = "-";
            time_t t = (time_t)v[i].created;
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime(&t));
            if (v[i].size)
                cli_human_size(v[i].size, size, sizeof size);
            printf("%-24s %-20s %s\n", v[i].name, when, size);
        }
    }
    qvm_snapshot_info_free(v, count);
    cli_close(cli);
    return 0;
}

static int snapshot_rm(struct cli *cli, int argc, char **argv)
{
    int n = cli_operand_count(cli, argc, argv);
    if (n != 2)
        return cli_usage(&cmd_snapshot, n < 0 ? "unknown option" : "rm needs NAME and SNAP");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_snapshot_remove(&cli->ctx, argv[optind], argv[optind + 1], &err);
    cli_close(cli);
    return r < 0 ? cli_fail("removing snapshot", &err) : 0;
}

static int run_snapshot(struct cli *cli, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage(&cmd_snapshot, "expected NAME SNAP, or ls or rm");
    /* "ls" and "rm" are verbs here; a VM of that name is snapshotted
     * with "qvm snapshot create NAME SNAP". */
    const char *sub = argv[1];
    if (!strcmp(sub, "ls") || !strcmp(sub, "list"))
        return snapshot_ls(cli, argc - 1, argv + 1);
    if (!strcmp(sub, "rm"))
        return snapshot_rm(cli, argc - 1, argv + 1);
    if (!strcmp(sub, "create"))
        return snapshot_create(cli, argc - 1, argv + 1);
    return snapshot_create(cli, argc, argv);
}

static int run_revert(struct cli *cli, int argc, char **argv)
{
    int n = cli_operand_count(cli, argc, argv);
    if (n != 2)
        return cli_usage(&cmd_revert, n < 0 ? "unknown option" : "expected NAME and SNAP");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_revert(&cli->ctx, argv[optind], argv[optind + 1], &err);
    cli_close(cli);
    return r < 0 ? cli_fail("reverting virtual machine", &err) : 0;
}

static int run_clone(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "snapshot", required_argument, NULL, 's' },
        { "no-start", no_argument, NULL, 'n' },
        CLI_COMMON_OPTIONS, { 0 },
    };
    struct qvm_clone_opts o = { 0 };
    int c;
    while ((c = getopt_long(argc, argv, "s:", opts, NULL)) != -1) {
        if (c == 's')
            o.snapshot = optarg;
        else if (c == 'n')
            o.no_start = true;
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_clone, "unknown option");
    }
    if (argc - optind != 2)
        return cli_usage(&cmd_clone, "expected SRC and DST");
    const char *src = argv[optind], *dst = argv[optind + 1];
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_clone(&cli->ctx, src, dst, &o, &err);
    if (r == 0 && cli->json) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "name", json_object_new_string(dst));
        json_object_object_add(j, "source", json_object_new_string(src));
        json_object_object_add(j, "snapshot", o.snapshot ? json_object_new_string(o.snapshot)
                                                         : NULL);
        cli_print_json(j);
    }
    cli_close(cli);
    return r < 0 ? cli_fail("cloning virtual machine", &err) : 0;
}

const struct cli_command cmd_snapshot = {
    .name = "snapshot",
    .run = run_snapshot,
    .summary = "take, list and remove snapshots of a VM's disk",
    .help =
        "Usage: qvm snapshot NAME SNAP\n"
        "       qvm snapshot ls [--json] NAME\n"
        "       qvm snapshot rm NAME SNAP\n"
        "\n"
        "qvm snapshot NAME SNAP keeps the disk of VM NAME as it is now, as snapshot\n"
        "SNAP (a name like a VM's: a-z, 0-9, '.', '_', '-'). On Btrfs and ZFS pools a\n"
        "snapshot is O(1) and shares every block with the disk; on a dir pool it is a\n"
        "reflink copy of the disk file where the file system can make one (XFS,\n"
        "Btrfs), else a sparse copy. Snapshots live in the VM's bundle and go with it.\n"
        "\n"
        "A running VM is kept still for a consistent snapshot: its file systems are\n"
        "frozen through the QEMU guest agent (guest-fsfreeze-freeze) if it answers\n"
        "within 3 s, else the VM is paused (QMP stop) for the moment the snapshot\n"
        "takes; it is thawed or resumed whatever happens, and if qvm itself is\n"
        "killed meanwhile, the next qvm command thaws or resumes it. A paused VM is\n"
        "snapshotted as it is.\n"
        "\n"
        "qvm snapshot ls lists the snapshots oldest first, with the time each was\n"
        "taken and the disk's size in it. qvm snapshot rm removes one; any snapshot\n"
        "can be removed, except on ZFS one that other VMs were cloned from (qvm clone\n"
        "--snapshot): that is refused, naming them. (On ZFS a removed snapshot whose\n"
        "blocks a newer snapshot's history still shares after a revert disappears\n"
        "from the list, and its space is freed when that history goes.)\n"
        "\n"
        "To snapshot a VM named 'ls' or 'rm': qvm snapshot create NAME SNAP.\n"
        "See also: qvm revert, qvm clone.\n"
        "\n"
        "Options:\n"
        "  --json   snapshot ls: an array of objects with name, created (Unix time)\n"
        "           and size (bytes)\n",
};

const struct cli_command cmd_revert = {
    .name = "revert",
    .run = run_revert,
    .summary = "put a stopped VM's disk back to one of its snapshots",
    .help =
        "Usage: qvm revert NAME SNAP\n"
        "\n"
        "Makes the disk of VM NAME what snapshot SNAP holds. Any snapshot can be\n"
        "reverted to, not only the newest, and every snapshot - older and newer -\n"
        "is kept, so reverting to another one later works too. What the disk held\n"
        "since the last snapshot is discarded: take a snapshot first to keep it.\n"
        "\n"
        "The VM must be stopped (qvm stop NAME): its disk is replaced. On ZFS, where\n"
        "zfs rollback would destroy every newer snapshot, qvm clones the snapshot,\n"
        "swaps the clone in and promotes it, keeping the newer snapshots on a\n"
        "history dataset beside the disk (seed 004). The revert is atomic: if it\n"
        "fails or qvm is killed, the disk is as it was.\n",
};

const struct cli_command cmd_clone = {
    .name = "clone",
    .run = run_clone,
    .summary = "make a new VM from another VM's disk or snapshot",
    .help =
        "Usage: qvm clone [--snapshot SNAP] [--no-start] SRC DST\n"
        "\n"
        "Makes VM DST, in SRC's pool, with a copy-on-write clone of SRC's disk as it\n"
        "is now (SRC is frozen or paused for the moment, as for qvm snapshot) or of\n"
        "its snapshot SNAP, and starts it. DST is a new machine to cloud-init: a new\n"
        "instance-id, its own MAC address (derived from the pool and DST) and DST as\n"
        "host name, in a new NoCloud seed. Everything else is SRC's: its settings\n"
        "(memory, vCPUs, ...), its user-data and the image version it came from\n"
        "(which qvm image rm then refuses to remove while DST exists). DST's qvm\n"
        "file (vm.yaml in its bundle) is SRC's with name, mac, a fixed ssh-port,\n"
        "user-data hostname and fqdn, and meta-data instance-id and local-hostname\n"
        "replaced; a fixed ssh-port becomes auto.\n"
        "\n"
        "On dir and Btrfs pools the clone stands alone: SRC, its snapshots and DST\n"
        "can each be removed at any time. On ZFS the clone depends on a snapshot of\n"
        "SRC's disk (SNAP, or one qvm takes and hides): qvm rm SRC and qvm snapshot\n"
        "rm SRC SNAP are refused, naming the clones, until they are removed (qvm never\n"
        "destroys a dependent clone, and never promotes one out of its place).\n"
        "\n"
        "Options:\n"
        "  -s, --snapshot SNAP  clone SRC's snapshot SNAP instead of its disk now\n"
        "      --no-start       provision DST but do not start it\n"
        "      --json           print {name, source, snapshot} on success\n",
};
