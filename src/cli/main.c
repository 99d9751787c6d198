/* main.c - qvm's entry point: global options and the command table. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct cli_command *const commands[] = {
    &cmd_pool, &cmd_image, &cmd_up, &cmd_ls, &cmd_start, &cmd_stop, &cmd_restart, &cmd_pause,
    &cmd_resume, &cmd_info, &cmd_edit, &cmd_resize, &cmd_autostart, &cmd_snapshot, &cmd_revert, &cmd_clone, &cmd_rm, &cmd_console, &cmd_exec, &cmd_wait, &cmd_ssh, &cmd_export,
    &cmd_import, &cmd_scan, &cmd_host, &cmd_net, &cmd_adopt, &cmd_doctor,
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void print_main_help(FILE *f)
{
    fputs("Usage: qvm [--root DIR] [--json] [--quiet] COMMAND [ARGS...]\n"
          "\n"
          "qvm provisions and runs virtual machines from cloud images on copy-on-write\n"
          "storage, from one YAML file per VM (the qvm file: vm, user-data and meta-data\n"
          "documents). Every change it makes is atomic: a failed or interrupted command\n"
          "leaves the host as it was.\n"
          "\n"
          "Commands:\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fputs("\n"
          "Global options:\n"
          "  --root DIR   keep configuration, state and runtime files under DIR\n"
          "               (default: $QVM_ROOT, else /etc/qvm, /var/lib/qvm, /run/qvm)\n"
          "  --json       machine-readable output on stdout (progress goes to stderr)\n"
          "  --quiet      no progress messages\n"
          "  --version    print the version\n"
          "  -h, --help   this help; 'qvm COMMAND --help' for a command's manual\n"
          "\n"
          "Environment:\n"
          "  QVM_ROOT     as --root\n"
          "  QVM_QEMU     the QEMU binary (default qemu-system-x86_64)\n"
          "\n"
          "Exit status: 0 on success, 1 on any error (printed as 'Error <task>: <why>'\n"
          "on stderr); qvm exec passes the guest command's status through.\n"
          "\n"
          "Quick start:\n"
          "  qvm image import debian12 ./debian-12-genericcloud-amd64.qcow2\n"
          "  qvm up examples/hello.yaml\n"
          "  qvm wait hello && qvm exec hello -- cat /etc/hostname\n"
          "  qvm rm hello\n", f);
}

int main(int argc, char **argv)
{
    qvm_timing_start();
    /* A closed pipe (qvm image send | ...) is an error to report, not a
     * reason to die. */
    signal(SIGPIPE, SIG_IGN);
    struct cli cli = { 0 };
    static const struct option opts[] = {
        { "root", required_argument, NULL, 'r' },
        { "json", no_argument, NULL, 'j' },
        { "quiet", no_argument, NULL, 'q' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    int c;
    /* '+': stop at the command name; its own options are its business. */
    while ((c = getopt_long(argc, argv, "+hq", opts, NULL)) != -1) {
        switch (c) {
        case 'r': cli.root = optarg; break;
        case 'j': cli.json = true; break;
        case 'q': cli.quiet = true; break;
        case 'V': puts("qvm 0.1.0"); return 0;
        case 'h': print_main_help(stdout); return 0;
        default: print_main_help(stderr); return 1;
        }
    }
    if (optind >= argc) {
        fputs("qvm: no command given\n\n", stderr);
        print_main_help(stderr);
        return 1;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        if (optind + 1 < argc) {
            for (size_t i = 0; i < NCOMMANDS; i++)
                if (strcmp(commands[i]->name, argv[optind + 1]) == 0) {
                    fputs(commands[i]->help, stdout);
                    return 0;
                }
        }
        print_main_help(stdout);
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i]->name, name) != 0)
            continue;
        int sub_argc = argc - optind;
        char **sub_argv = argv + optind;
        if (cli_want_help(commands[i], sub_argc, sub_argv))
            return 0;
        optind = 0;      /* reset getopt for the command's own options */
        return commands[i]->run(&cli, sub_argc, sub_argv);
    }
    fprintf(stderr, "qvm: unknown command '%s'\n\n", name);
    print_main_help(stderr);
    return 1;
}
