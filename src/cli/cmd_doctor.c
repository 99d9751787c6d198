/* cmd_doctor.c - qvm doctor [--repair] */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "core/doctor.h"

static int run_doctor(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = { { "repair", no_argument, NULL, 'r' },
                                          CLI_COMMON_OPTIONS, { 0 } };
    bool repair = false;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r')
            repair = true;
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_doctor, "unknown option");
    }
    if (optind != argc)
        return cli_usage(&cmd_doctor, "doctor takes no arguments");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_finding *f;
    size_t n;
    int r = qvm_doctor(&cli->ctx, repair, &f, &n, &err);
    cli_close(cli);
    if (r < 0)
        return cli_fail("checking the host", &err);
    size_t open = 0;
    for (size_t i = 0; i < n; i++)
        open += !f[i].fixed;
    if (cli->json) {
        json_object *arr = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "kind", json_object_new_string(f[i].kind));
            json_object_object_add(o, "problem", json_object_new_string(f[i].what));
            json_object_object_add(o, "repaired", json_object_new_boolean(f[i].fixed));
            json_object_array_add(arr, o);
        }
        cli_print_json(arr);
    } else if (n == 0) {
        printf("No problems found.\n");
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%-8s %s\n", f[i].fixed ? "repaired" : "found", f[i].what);
        if (open && !repair)
            printf("Run 'qvm doctor --repair' to fix %s.\n", open == 1 ? "it" : "them");
    }
    qvm_findings_free(f, n);
    return open ? 1 : 0;
}

const struct cli_command cmd_doctor = {
    .name = "doctor",
    .run = run_doctor,
    .summary = "find (and repair) what an interrupted operation left behind",
    .help =
        "Usage: qvm doctor [--repair] [--json]\n"
        "\n"
        "Every qvm command first rolls back operations that an earlier, killed qvm\n"
        "left half-done. qvm doctor reports what remains beyond that: journals whose\n"
        "rollback failed, removed VM bundles not yet freed, partial image copies,\n"
        "disks without a VM, runtime files without a process, and QEMU processes\n"
        "qvm started for VMs that no longer exist. VMs and images another qvm\n"
        "command is working on are left alone.\n"
        "\n"
        "Options:\n"
        "  --repair   fix what is found: roll back, remove, or kill\n"
        "  --json     an array of {kind, problem, repaired}\n"
        "\n"
        "Exit status: 0 when nothing is left to fix, 1 otherwise.\n",
};
