/* cmd_adopt.c - qvm adopt DOMAIN, and the serial console of libvirt VMs
 * (qvm console calls cli_console_libvirt for them). */
#include <getopt.h>
#include <stdio.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "core/runtime_libvirt.h"

static int run_adopt(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "uri", required_argument, NULL, 'u' },
        { "pool", required_argument, NULL, 'p' },
        { "dry-run", no_argument, NULL, 'n' },
        CLI_COMMON_OPTIONS, { 0 },
    };
    struct qvm_adopt_opts ao = { 0 };
    int c;
    while ((c = getopt_long(argc, argv, "np:", opts, NULL)) != -1) {
        switch (c) {
        case 'u': ao.uri = optarg; break;
        case 'p': ao.pool = optarg; break;
        case 'n': ao.dry_run = true; break;
        default:
            if (!cli_common_option(cli, c, optarg))
                return cli_usage(&cmd_adopt, "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_adopt, argc - optind ? "too many arguments" : "missing DOMAIN");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_adopt(&cli->ctx, argv[optind], &ao, &err);
    cli_close(cli);
    return r < 0 ? cli_fail("adopting libvirt domain", &err) : 0;
}

int cli_console_libvirt(struct cli *cli, const struct qvm_vm *vm)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios saved, raw;
    if (tty) {
        tcgetattr(STDIN_FILENO, &saved);
        raw = saved;
        cfmakeraw(&raw);
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    fprintf(stderr, "Connected to the console of '%s' (libvirt). Press Ctrl-] to leave.\r\n",
            vm->spec.name);
    struct qvm_error err = { 0 };
    int r = qvm_lv_console(&cli->ctx, vm, tty ? 0x1d : -1, &err);
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    fprintf(stderr, "\r\nDisconnected from '%s'.\n", vm->spec.name);
    return r < 0 ? cli_fail("attaching to console", &err) : 0;
}

const struct cli_command cmd_adopt = {
    .name = "adopt",
    .run = run_adopt,
    .summary = "take an existing libvirt domain under qvm's management",
    .help =
        "Usage: qvm adopt [--uri URI] [--pool POOL] [--dry-run] DOMAIN\n"
        "\n"
        "Makes the libvirt domain DOMAIN (defined with virt-install, virt-manager\n"
        "or virsh) a qvm VM of the same name, keeping the domain: from then on\n"
        "qvm ls, start, stop, exec, wait, console, snapshot and rm work on it,\n"
        "and virsh and virt-manager still see it (runtime libvirt).\n"
        "\n"
        "The domain must be shut off, its name must be a valid qvm name, and its\n"
        "one writable disk must be a raw or qcow2 file (without a backing file)\n"
        "inside one of qvm's dir pools. Read-only disks must be in that pool too;\n"
        "empty CD-ROM drives are fine. A domain with disks anywhere else is\n"
        "refused, naming them. The disk is moved into a new VM bundle in that pool\n"
        "by a rename (never a copy), and the domain is redefined with the disk's\n"
        "new path and qvm's metadata; every other setting stays as it was. Each\n"
        "step is journaled: a failure moves the disk back and restores the\n"
        "domain's definition.\n"
        "\n"
        "The adopted VM has no image version and no cloud-init seed; qvm records\n"
        "memory, vCPUs, machine, disk bus and the first NIC from the domain.\n"
        "\n"
        "Options:\n"
        "  --uri URI       the libvirt connection (default qemu:///system)\n"
        "  -p, --pool POOL only adopt a disk that is in dir pool POOL\n"
        "  -n, --dry-run   check everything and say what would be done\n"
        "\n"
        "Errors (exit status 1): 'Error adopting libvirt domain: ...' naming the\n"
        "domain and what stands in the way (disks outside qvm's pools, a running\n"
        "domain, a VM of that name).\n"
        "\n"
        "Examples:\n"
        "  qvm adopt --dry-run legacy-web\n"
        "  qvm adopt legacy-web && qvm ls\n",
};
