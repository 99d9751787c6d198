/* cmd_up.c - qvm up FILE */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "core/lifecycle.h"
#include "core/memory.h"

static int run_up(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "dry-run", no_argument, NULL, 'n' },
        { "no-start", no_argument, NULL, 'S' },
        { "pool", required_argument, NULL, 'p' },
        { "reuse", required_argument, NULL, 'R' },
        { "force", no_argument, NULL, 'f' },
        { "runtime", required_argument, NULL, 'r' },
        CLI_COMMON_OPTIONS, { 0 },
    };
    struct qvm_up_opts up = { 0 };
    int c;
    while ((c = getopt_long(argc, argv, "np:", opts, NULL)) != -1) {
        switch (c) {
        case 'n': up.dry_run = true; break;
        case 'S': up.no_start = true; break;
        case 'p': up.pool = optarg; break;
        case 'R': up.reuse = optarg; break;
        case 'f': qvm_memory_set_force(true); break;
        case 'r': up.runtime = optarg; break;
        default:
            if (!cli_common_option(cli, c, optarg))
                return cli_usage(&cmd_up, "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_up, argc - optind ? "too many arguments" : "missing FILE");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_up(&cli->ctx, argv[optind], &up, &err);
    cli_close(cli);
    if (r < 0)
        return cli_fail("provisioning virtual machine", &err);
    return 0;
}

const struct cli_command cmd_up = {
    .name = "up",
    .run = run_up,
    .summary = "provision a VM from a qvm file and start it",
    .help =
        "Usage: qvm up [--dry-run] [--no-start] [--force] [--pool POOL] [--reuse DISKFILE]\n"
        "              [--runtime qemu|libvirt|virt-install] FILE\n"
        "\n"
        "Provisions the VM described by the qvm file FILE: clones its disk from the\n"
        "image version named by vm.disk.zvol.base (copy-on-write, so it costs no time\n"
        "or space), writes the cloud-init NoCloud seed from the user-data, meta-data\n"
        "and optional network-config documents, and starts QEMU with a QMP socket, a\n"
        "serial console and a guest-agent channel. Returns once QEMU reports the VM\n"
        "running; cloud-init then configures the guest on its first boot (see\n"
        "'qvm wait').\n"
        "\n"
        "Everything in the file is validated before anything is changed. Each step\n"
        "after that is journaled: if one fails, every earlier step is undone; if qvm\n"
        "is killed, the next qvm command undoes them. Anything that could not be\n"
        "undone is named in the error.\n"
        "\n"
        "The qvm file holds three YAML documents, each with a top-level 'qvm' key:\n"
        "  qvm: vm              the VM, in virt-install's vocabulary: name, memory\n"
        "                       (MiB), vcpus, cpu, machine, virt-type/accel, boot,\n"
        "                       graphics (none|vnc), network (user|none, or a mapping\n"
        "                       with type, model, mac, ssh-port), os-variant, import,\n"
        "                       noautoconsole, and disk: {bus, size (GiB), cache, pool,\n"
        "                       zvol: {base: IMAGE[@vN], name, clone properties...}},\n"
        "                       or a list of such disks: exactly one with zvol (the\n"
        "                       image disk), the others empty data disks {size, bus,\n"
        "                       cache, pool, name (default disk1, disk2, ...)}; the\n"
        "                       first boots unless one says boot: true\n"
        "  qvm: user-data       cloud-init user-data, sent as #cloud-config unchanged\n"
        "  qvm: meta-data       cloud-init meta-data ('metadata' is accepted too)\n"
        "  qvm: network-config  optional cloud-init network configuration\n"
        "An option qvm does not support is an error that names it.\n"
        "\n"
        "With network 'user' (the default), guest port 22 is forwarded from a free\n"
        "port on 127.0.0.1, shown here and by 'qvm ls'. The accelerator is KVM where\n"
        "KVM can run an ordinary guest, else TCG (qvm says so once).\n"
        "\n"
        "The runtime runs the VM: qemu (qvm's own QEMU, the default), libvirt (a\n"
        "libvirt domain qvm defines through libvirt's API, seen by virsh and\n"
        "virt-manager; vm.runtime-uri or the pool's runtime-uri names the connection,\n"
        "default qemu:///system) or virt-install (seed 000's way: virt-install is run\n"
        "with the file's options, --dry-run first; vm keys qvm does not model are\n"
        "passed to it as --KEY=VALUE). --runtime, else vm.runtime, else the pool's\n"
        "runtime key in qvm.conf picks it. With libvirt, network may also be\n"
        "network=NAME (a libvirt network) or bridge=NAME (a host bridge).\n"
        "\n"
        "The VM starts only if the host's memory budget has room for it (see 'qvm\n"
        "host'); otherwise up fails with the numbers and rolls back.\n"
        "\n"
        "Options:\n"
        "  -n, --dry-run   validate everything and print what would be done\n"
        "  --no-start      provision the VM but do not start it ('qvm start' does)\n"
        "  --force         start it even if the memory budget has no room for it\n"
        "  -p, --pool POOL the pool for the VM's image disk (default: disk.pool, else\n"
        "                  the pool holding the image); data disks without a pool\n"
        "                  of their own go there too\n"
        "  --runtime R     qemu, libvirt or virt-install (see above)\n"
        "  --reuse DISKFILE adopt an existing disk file (raw, or qcow2 without a\n"
        "                  backing file) as the VM's disk instead of cloning an\n"
        "                  image: it is renamed into the VM's bundle, never copied,\n"
        "                  so it must be on the dir pool's file system; a failed up\n"
        "                  renames it back. disk.zvol.base is then not used, and\n"
        "                  'qvm rm' deletes the file with the VM.\n"
        "\n"
        "Errors (exit status 1): 'Error importing qvm file: FILE:LINE:COL: key ...'\n"
        "for anything wrong in the file; 'Error provisioning virtual machine: ...'\n"
        "for the rest (image or version missing, VM exists, clone, seed or QEMU\n"
        "failure), followed by what rollback could not undo, if anything.\n"
        "\n"
        "Examples:\n"
        "  qvm up --dry-run web1.yaml\n"
        "  qvm up web1.yaml && qvm wait web1\n"
        "  qvm up --reuse /var/lib/qvm/pools/default/old-web.qcow2 web1.yaml\n"
        "  qvm up --runtime libvirt web1.yaml && virsh dumpxml web1\n",
};
