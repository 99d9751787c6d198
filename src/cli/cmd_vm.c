/* cmd_vm.c - qvm ls|start|stop|restart|pause|resume|rm|console */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "core/lifecycle.h"
#include "core/memory.h"
#include "core/monitor.h"
#include "core/runtime_libvirt.h"
#include "core/vm.h"

#define STOP_TIMEOUT_S 60     /* how long stop and restart wait for an ACPI power-off */
#define STR(x) #x
#define XSTR(x) STR(x)
/* Every verb that talks to a VM's monitor says how it waits for it. */
#define LOCK_HELP \
    "If another qvm command is working on the VM, waits up to " XSTR(QVM_LOCK_TIMEOUT_S) " s for it\n" \
    "(QVM_LOCK_TIMEOUT=SECONDS changes that), then fails naming that command.\n"

static int run_ls(struct cli *cli, int argc, char **argv)
{
    int n = cli_operand_count(cli, argc, argv);
    if (n != 0)
        return cli_usage(&cmd_ls, n < 0 ? "unknown option" : "ls takes no arguments");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_vm_status *st;
    size_t count;
    if (qvm_status_all(&cli->ctx, &st, &count, &err) < 0) {
        cli_close(cli);
        return cli_fail("listing VMs", &err);
    }
    if (cli->json) {
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < count; i++) {
            const struct qvm_vm *vm = &st[i].vm;
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(st[i].name));
            json_object_object_add(o, "state", json_object_new_string(st[i].state));
            json_object_object_add(o, "busy", json_object_new_boolean(st[i].busy));
            json_object_object_add(o, "pid", st[i].pid > 0 ? json_object_new_int(st[i].pid) : NULL);
            json_object_object_add(o, "uptime", st[i].uptime_s >= 0 ?
                                   json_object_new_int64(st[i].uptime_s) : NULL);
            json_object_object_add(o, "pool", json_object_new_string(vm->pool));
            json_object_object_add(o, "image", json_object_new_string(vm->image ? vm->image : ""));
            json_object_object_add(o, "version", json_object_new_string(vm->version ? vm->version : ""));
            json_object_object_add(o, "memory_mib", json_object_new_int64((int64_t)vm->spec.memory_mib));
            json_object_object_add(o, "vcpus", json_object_new_int((int)vm->spec.vcpus));
            json_object_object_add(o, "disk_size", json_object_new_int64((int64_t)vm->disk_size));
            json_object *disks = json_object_new_array();
            for (size_t pos = 0, k = 0; pos <= vm->spec.ndata_disks; pos++) {
                bool image = pos == vm->spec.image_disk_pos;
                const struct qvm_disk_spec *d = image ? NULL : &vm->spec.data_disks[k++];
                json_object *dj = json_object_new_object();
                json_object_object_add(dj, "name", json_object_new_string(
                                           image ? vm->disk_name : d->target_name));
                json_object_object_add(dj, "pool", json_object_new_string(
                                           image ? vm->pool : d->pool));
                json_object_object_add(dj, "size", json_object_new_int64(
                                           (int64_t)(image ? vm->disk_size : d->size_bytes)));
                json_object_array_add(disks, dj);
            }
            json_object_object_add(o, "disks", disks);
            json_object_object_add(o, "mac", json_object_new_string(vm->mac));
            json_object_object_add(o, "ssh_port", vm->ssh_port ? json_object_new_int(vm->ssh_port) : NULL);
            json_object_array_add(arr, o);
        }
        cli_print_json(arr);
    } else {
        printf("%-20s %-8s %-8s %-6s %-5s %-6s %-16s %s\n", "NAME", "STATE", "PID", "MEM", "CPUS",
               "DISK", "IMAGE", "SSH");
        for (size_t i = 0; i < count; i++) {
            const struct qvm_vm *vm = &st[i].vm;
            char pid[16] = "-", mem[16], disk[16], ssh[32] = "-", img[80];
            if (st[i].pid > 0)
                snprintf(pid, sizeof pid, "%d", (int)st[i].pid);
            cli_human_size(vm->spec.memory_mib << 20, mem, sizeof mem);
            cli_human_size(vm->disk_size, disk, sizeof disk);
            if (vm->spec.ndata_disks) {   /* the image disk, and how many more */
                size_t l = strlen(disk);
                snprintf(disk + l, sizeof disk - l, "+%zu", vm->spec.ndata_disks);
            }
            if (vm->ssh_port)
                snprintf(ssh, sizeof ssh, "127.0.0.1:%d", vm->ssh_port);
            if (vm->image)   /* none: a disk adopted with up --reuse */
                snprintf(img, sizeof img, "%s@%s", vm->image, vm->version ? vm->version : "?");
            else
                snprintf(img, sizeof img, "-");
            printf("%-20s %-8s %-8s %-6s %-5u %-6s %-16s %s\n", st[i].name, st[i].state, pid, mem,
                   vm->spec.vcpus, disk, img, ssh);
        }
    }
    qvm_status_free(st, count);
    cli_close(cli);
    return 0;
}

static int run_start(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "force", no_argument, NULL, 'f' }, CLI_COMMON_OPTIONS, { 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
        if (c == 'f')
            qvm_memory_set_force(true);     /* memory admission: start anyway */
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_start, "unknown option");
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_start, "expected one VM name");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_start(&cli->ctx, argv[optind], &err);
    cli_close(cli);
    return r < 0 ? cli_fail("starting virtual machine", &err) : 0;
}

/* stop and restart: [--force] [--timeout S] NAME. Returns NAME's index, or
 * -1 after a usage message. */
static int stop_args(struct cli *cli, const struct cli_command *cmd, int argc, char **argv,
                     bool *force, int *timeout)
{
    static const struct option opts[] = {
        { "force", no_argument, NULL, 'f' },
        { "timeout", required_argument, NULL, 't' },
        CLI_COMMON_OPTIONS, { 0 },
    };
    *force = false;
    *timeout = STOP_TIMEOUT_S;
    int c;
    while ((c = getopt_long(argc, argv, "ft:", opts, NULL)) != -1) {
        if (c == 'f') {
            *force = true;
        } else if (c == 't') {
            char *end;
            long t = strtol(optarg, &end, 10);
            if (!*optarg || *end || t < 0 || t > 86400) {
                cli_usage(cmd, "--timeout takes seconds (0..86400), not '%s'", optarg);
                return -1;
            }
            *timeout = (int)t;
        } else if (!cli_common_option(cli, c, optarg)) {
            cli_usage(cmd, "unknown option");
            return -1;
        }
    }
    if (argc - optind != 1) {
        cli_usage(cmd, "expected one VM name");
        return -1;
    }
    return optind;
}

static int run_stop(struct cli *cli, int argc, char **argv)
{
    bool force;
    int timeout;
    int i = stop_args(cli, &cmd_stop, argc, argv, &force, &timeout);
    if (i < 0)
        return 1;
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_stop(&cli->ctx, argv[i], force, timeout, &err);
    cli_close(cli);
    return r < 0 ? cli_fail("stopping virtual machine", &err) : 0;
}

static int run_restart(struct cli *cli, int argc, char **argv)
{
    bool force;
    int timeout;
    int i = stop_args(cli, &cmd_restart, argc, argv, &force, &timeout);
    if (i < 0)
        return 1;
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_restart(&cli->ctx, argv[i], force, timeout, &err);
    cli_close(cli);
    return r < 0 ? cli_fail("restarting virtual machine", &err) : 0;
}

static int run_pause_resume(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    int n = cli_operand_count(cli, argc, argv);
    if (n != 1)
        return cli_usage(cmd, n < 0 ? "unknown option" : "expected one VM name");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    bool pause = cmd == &cmd_pause;
    int r = pause ? qvm_pause(&cli->ctx, argv[argc - 1], &err)
                  : qvm_resume(&cli->ctx, argv[argc - 1], &err);
    cli_close(cli);
    return r < 0 ? cli_fail(pause ? "pausing virtual machine" : "resuming virtual machine", &err)
                 : 0;
}

static int run_pause(struct cli *cli, int argc, char **argv)
{
    return run_pause_resume(cli, &cmd_pause, argc, argv);
}

static int run_resume(struct cli *cli, int argc, char **argv)
{
    return run_pause_resume(cli, &cmd_resume, argc, argv);
}

static int run_rm(struct cli *cli, int argc, char **argv)
{
    int n = cli_operand_count(cli, argc, argv);
    if (n < 1)
        return cli_usage(&cmd_rm, n < 0 ? "unknown option" : "expected a VM name");
    if (cli_open(cli))
        return 1;
    int status = 0;
    for (int i = argc - n; i < argc; i++) {
        struct qvm_error err = { 0 };
        if (qvm_rm(&cli->ctx, argv[i], &err) < 0)
            status = cli_fail("removing virtual machine", &err);
    }
    cli_close(cli);
    return status;
}

static int run_console(struct cli *cli, int argc, char **argv)
{
    int n = cli_operand_count(cli, argc, argv);
    if (n != 1)
        return cli_usage(&cmd_console, n < 0 ? "unknown option" : "expected one VM name");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_vm vm;
    if (qvm_vm_load(&cli->ctx, argv[argc - 1], &vm, &err) < 0) {
        cli_close(cli);
        return cli_fail("attaching to console", &err);
    }
    int status = 0;
    /* The console is its own socket, not the monitor: no VM lock, so a
     * console left open never holds up other commands. */
    if (qvm_vm_running_pid(&vm, NULL, &err) < 0) {
        status = cli_fail("attaching to console", &err);
        goto out;
    }
    if (qvm_vm_libvirt(&vm)) {                  /* libvirt's console (cmd_adopt.c) */
        status = cli_console_libvirt(cli, &vm);
        goto out;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", vm.console_socket);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        qvm_err_errno(&err, errno, "cannot connect to the console of VM '%s' (%s)",
                      vm.spec.name, vm.console_socket);
        if (fd >= 0)
            close(fd);
        status = cli_fail("attaching to console", &err);
        goto out;
    }
    bool tty = isatty(STDIN_FILENO);
    struct termios saved, raw;
    if (tty) {
        tcgetattr(STDIN_FILENO, &saved);
        raw = saved;
        cfmakeraw(&raw);
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    fprintf(stderr, "Connected to the console of '%s'. Press Ctrl-] to leave.\r\n", vm.spec.name);
    struct pollfd pfd[2] = { { .fd = STDIN_FILENO, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
    char buf[4096];
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pfd[1].revents & (POLLIN | POLLHUP)) {
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0)
                break;
            if (write(STDOUT_FILENO, buf, (size_t)r) < 0)
                break;
        }
        if (pfd[0].revents & (POLLIN | POLLHUP)) {
            ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
            if (r <= 0)
                break;
            char *esc = tty ? memchr(buf, 0x1d, (size_t)r) : NULL;   /* Ctrl-] */
            size_t len = esc ? (size_t)(esc - buf) : (size_t)r;
            if (len && write(fd, buf, len) < 0)
                break;
            if (esc)
                break;
        }
    }
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    fprintf(stderr, "\r\nDisconnected from '%s'.\n", vm.spec.name);
    close(fd);
out:
    qvm_vm_release(&vm);
    cli_close(cli);
    return status;
}

const struct cli_command cmd_ls = {
    .name = "ls",
    .run = run_ls,
    .summary = "list VMs with their state, resources and SSH port",
    .help =
        "Usage: qvm ls [--json]\n"
        "\n"
        "Lists every VM in every pool: name, state, QEMU pid, memory, vCPUs, disk\n"
        "size (the image disk's; '+2': two data disks more), the image version its\n"
        "disk was cloned from, and the host address\n"
        "forwarded to the guest's SSH port (network 'user'). The state is 'stopped'\n"
        "or, for a running QEMU, what its monitor reports (query-status): 'running',\n"
        "'paused', 'guest-panicked', ... A VM another qvm command is working on is\n"
        "shown as 'running' without asking its monitor (busy in --json). 'qvm info\n"
        "NAME' tells more about one VM.\n"
        "\n"
        "Options:\n"
        "  --json   an array of objects with name, state, busy, pid, uptime, pool,\n"
        "           image, version, memory_mib, vcpus, disk_size, disks (name, pool,\n"
        "           size of each), mac and ssh_port\n",
};

const struct cli_command cmd_start = {
    .name = "start",
    .run = run_start,
    .summary = "start a stopped VM",
    .help =
        "Usage: qvm start [--force] NAME\n"
        "\n"
        "Starts QEMU for VM NAME from its bundle (definition, disk and seed) and\n"
        "returns once QMP reports it running. Starting a running VM is not an error.\n"
        "\n"
        "Memory admission: the VM starts only if the host's memory minus the host\n"
        "reserve minus what running VMs use (their memory plus a QEMU overhead\n"
        "each) leaves room for its memory plus the overhead; otherwise start fails\n"
        "with the numbers. 'qvm host' shows the budget; qvm.conf's host section\n"
        "sets it. Two starts never share the same free memory: the check holds a\n"
        "host-wide lock until QEMU runs. On a ZFS host the ARC limit is lowered\n"
        "first (see 'qvm host --help').\n"
        "\n"
        "Options:\n"
        "  -f, --force   start even if the memory budget has no room for the VM\n"
        "\n"
        LOCK_HELP,
};

const struct cli_command cmd_stop = {
    .name = "stop",
    .run = run_stop,
    .summary = "power a VM off (ACPI, then hard stop after a timeout)",
    .help =
        "Usage: qvm stop [--force] [--timeout SECONDS] NAME\n"
        "\n"
        "Asks the guest to power off through an ACPI power-button event (QMP\n"
        "system_powerdown) and waits for QEMU to exit. If the guest has not powered\n"
        "off within the timeout (default " XSTR(STOP_TIMEOUT_S) " s), QEMU is told to quit, and killed if\n"
        "it does not. A paused VM is resumed first, so that its guest can act on\n"
        "the power button. Stopping a stopped VM is not an error; if its QEMU had\n"
        "died, stop removes the runtime files it left.\n"
        "\n"
        LOCK_HELP
        "\n"
        "Options:\n"
        "  -f, --force            skip the ACPI request: stop at once (QMP quit, then\n"
        "                         SIGKILL)\n"
        "  -t, --timeout SECONDS  how long the guest gets to power off (default " XSTR(STOP_TIMEOUT_S) ")\n",
};

const struct cli_command cmd_restart = {
    .name = "restart",
    .run = run_restart,
    .summary = "stop a VM (ACPI) and start it again, applying edits",
    .help =
        "Usage: qvm restart [--force] [--timeout SECONDS] NAME\n"
        "\n"
        "Stops VM NAME as 'qvm stop' does (ACPI power-down, waiting up to the\n"
        "timeout, default " XSTR(STOP_TIMEOUT_S) " s, then a hard stop) and starts it again, reading\n"
        "its definition anew, so changes made while it ran (qvm edit) apply. No\n"
        "other qvm command gets in between. Restarting a stopped VM starts it.\n"
        "\n"
        LOCK_HELP
        "\n"
        "Options:\n"
        "  -f, --force            do not ask the guest: stop it at once\n"
        "  -t, --timeout SECONDS  how long the guest gets to power off (default " XSTR(STOP_TIMEOUT_S) ")\n",
};

const struct cli_command cmd_pause = {
    .name = "pause",
    .run = run_pause,
    .summary = "freeze a running VM's vCPUs",
    .help =
        "Usage: qvm pause NAME\n"
        "\n"
        "Stops VM NAME's virtual CPUs (QMP stop): the guest is frozen in place, its\n"
        "memory kept, its clock stopped. QEMU keeps running; 'qvm ls' and 'qvm info'\n"
        "show the VM as paused, 'qvm exec' and 'qvm wait' refuse it, 'qvm stop'\n"
        "resumes it before asking it to power off. Pausing a paused VM is not an\n"
        "error.\n"
        "\n"
        LOCK_HELP,
};

const struct cli_command cmd_resume = {
    .name = "resume",
    .run = run_resume,
    .summary = "let a paused VM run again",
    .help =
        "Usage: qvm resume NAME\n"
        "\n"
        "Lets the virtual CPUs of paused VM NAME run again (QMP cont). Resuming a\n"
        "running VM is not an error.\n"
        "\n"
        LOCK_HELP,
};

const struct cli_command cmd_rm = {
    .name = "rm",
    .run = run_rm,
    .summary = "remove VMs with their disks (stopping them first)",
    .help =
        "Usage: qvm rm NAME...\n"
        "\n"
        "Stops each VM if it runs (at once, without waiting for the guest), then\n"
        "removes it: its definition, seed, console log and disks, data disks in\n"
        "other pools included. The removal is\n"
        "atomic: the VM's bundle is first detached in one rename, so an interrupted\n"
        "rm leaves either the whole VM or none of it (and 'qvm doctor --repair' frees\n"
        "the space of a detached bundle).\n"
        "\n"
        "On ZFS pools a VM whose snapshots other VMs were cloned from (qvm clone)\n"
        "cannot be removed: rm is refused, naming those VMs; remove them first.\n"
        "On dir and Btrfs pools clones stand alone and rm always proceeds.\n",
};

const struct cli_command cmd_console = {
    .name = "console",
    .run = run_console,
    .summary = "attach to a VM's serial console",
    .help =
        "Usage: qvm console NAME\n"
        "\n"
        "Connects the terminal to the VM's serial console (ttyS0). Press Ctrl-] to\n"
        "leave; the VM keeps running. Everything the console printed since the VM\n"
        "was created is also in console.log in the VM's bundle.\n",
};
