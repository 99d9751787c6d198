/* cmd_vm.c - qvm ls|start|stop|rm|console */
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
#include "core/vm.h"

/* Parses common options only and returns the remaining argument count. */
static int simple_args(struct cli *cli, const struct cli_command *cmd, int argc, char **argv)
{
    static const struct option opts[] = { CLI_COMMON_OPTIONS, { 0 } };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (!cli_common_option(cli, c, optarg))
            return -1;
    return argc - optind;
}

static int run_ls(struct cli *cli, int argc, char **argv)
{
    int n = simple_args(cli, &cmd_ls, argc, argv);
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
            json_object_object_add(o, "pid", st[i].pid > 0 ? json_object_new_int(st[i].pid) : NULL);
            json_object_object_add(o, "uptime", st[i].uptime_s >= 0 ?
                                   json_object_new_int64(st[i].uptime_s) : NULL);
            json_object_object_add(o, "pool", json_object_new_string(vm->pool));
            json_object_object_add(o, "image", json_object_new_string(vm->image ? vm->image : ""));
            json_object_object_add(o, "version", json_object_new_string(vm->version ? vm->version : ""));
            json_object_object_add(o, "memory_mib", json_object_new_int64((int64_t)vm->spec.memory_mib));
            json_object_object_add(o, "vcpus", json_object_new_int((int)vm->spec.vcpus));
            json_object_object_add(o, "disk_size", json_object_new_int64((int64_t)vm->disk_size));
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
    int n = simple_args(cli, &cmd_start, argc, argv);
    if (n != 1)
        return cli_usage(&cmd_start, n < 0 ? "unknown option" : "expected one VM name");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_start(&cli->ctx, argv[argc - 1], &err);
    cli_close(cli);
    return r < 0 ? cli_fail("starting virtual machine", &err) : 0;
}

static int run_stop(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        { "force", no_argument, NULL, 'f' },
        { "timeout", required_argument, NULL, 't' },
        CLI_COMMON_OPTIONS, { 0 },
    };
    bool force = false;
    int timeout = 60, c;
    while ((c = getopt_long(argc, argv, "ft:", opts, NULL)) != -1) {
        if (c == 'f') {
            force = true;
        } else if (c == 't') {
            char *end;
            long t = strtol(optarg, &end, 10);
            if (*end || t < 0 || t > 86400)
                return cli_usage(&cmd_stop, "--timeout takes seconds (0..86400), not '%s'", optarg);
            timeout = (int)t;
        } else if (!cli_common_option(cli, c, optarg)) {
            return cli_usage(&cmd_stop, "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_stop, "expected one VM name");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    int r = qvm_stop(&cli->ctx, argv[optind], force, timeout, &err);
    cli_close(cli);
    return r < 0 ? cli_fail("stopping virtual machine", &err) : 0;
}

static int run_rm(struct cli *cli, int argc, char **argv)
{
    int n = simple_args(cli, &cmd_rm, argc, argv);
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
    int n = simple_args(cli, &cmd_console, argc, argv);
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
    if (qvm_vm_pid(&vm) <= 0) {
        qvm_err(&err, ESRCH, "VM '%s' is not running; start it with: qvm start %s",
                vm.spec.name, vm.spec.name);
        status = cli_fail("attaching to console", &err);
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
        "Lists every VM in every pool: name, state (running or stopped), QEMU pid,\n"
        "memory, vCPUs, disk size, the image version its disk was cloned from, and the\n"
        "host address forwarded to the guest's SSH port (network 'user').\n"
        "\n"
        "Options:\n"
        "  --json   an array of objects with name, state, pid, uptime, pool, image,\n"
        "           version, memory_mib, vcpus, disk_size, mac and ssh_port\n",
};

const struct cli_command cmd_start = {
    .name = "start",
    .run = run_start,
    .summary = "start a stopped VM",
    .help =
        "Usage: qvm start NAME\n"
        "\n"
        "Starts QEMU for VM NAME from its bundle (definition, disk and seed) and\n"
        "returns once QMP reports it running. Starting a running VM is not an error.\n",
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
        "off within the timeout (default 60 s), QEMU is told to quit, and killed if\n"
        "it does not. Stopping a stopped VM is not an error.\n"
        "\n"
        "Options:\n"
        "  -f, --force            skip the ACPI request: stop at once\n"
        "  -t, --timeout SECONDS  how long the guest gets to power off\n",
};

const struct cli_command cmd_rm = {
    .name = "rm",
    .run = run_rm,
    .summary = "remove VMs with their disks (stopping them first)",
    .help =
        "Usage: qvm rm NAME...\n"
        "\n"
        "Stops each VM if it runs (at once, without waiting for the guest), then\n"
        "removes it: its definition, seed, console log and disks. The removal is\n"
        "atomic: the VM's bundle is first detached in one rename, so an interrupted\n"
        "rm leaves either the whole VM or none of it (and 'qvm doctor --repair' frees\n"
        "the space of a detached bundle).\n",
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
