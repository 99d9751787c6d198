/* cmd_guest.c - qvm exec|wait, through the guest agent */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/guest.h"

static int parse_timeout(const struct cli_command *cmd, const char *arg, int *ret)
{
    char *end;
    long t = strtol(arg, &end, 10);
    if (*end || t <= 0 || t > 86400)
        return cli_usage(cmd, "--timeout takes seconds (1..86400), not '%s'", arg);
    *ret = (int)t;
    return 0;
}

static int run_exec(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = { { "timeout", required_argument, NULL, 't' },
                                          CLI_COMMON_OPTIONS, { 0 } };
    int timeout = 300, c;
    while ((c = getopt_long(argc, argv, "+t:", opts, NULL)) != -1) {
        if (c == 't') {
            if (parse_timeout(&cmd_exec, optarg, &timeout))
                return 1;
        } else if (!cli_common_option(cli, c, optarg)) {
            return cli_usage(&cmd_exec, "unknown option");
        }
    }
    /* NAME -- CMD ARGS...  (getopt already consumed a leading "--") */
    if (argc - optind < 1)
        return cli_usage(&cmd_exec, "missing NAME");
    const char *name = argv[optind++];
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    if (optind >= argc)
        return cli_usage(&cmd_exec, "missing the command to run");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_exec_result res;
    int r = qvm_guest_exec(&cli->ctx, name, (const char *const *)argv + optind, NULL, timeout,
                           &res, &err);
    cli_close(cli);
    if (r < 0)
        return cli_fail("running command in guest", &err);
    if (cli->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "exit_status", json_object_new_int(res.exit_status));
        json_object_object_add(o, "stdout", json_object_new_string_len(res.out, (int)res.out_len));
        json_object_object_add(o, "stderr", json_object_new_string_len(res.err, (int)res.err_len));
        cli_print_json(o);
    } else {
        if (res.out_len && fwrite(res.out, 1, res.out_len, stdout) != res.out_len)
            r = -1;
        if (res.err_len && fwrite(res.err, 1, res.err_len, stderr) != res.err_len)
            r = -1;
    }
    int status = res.exit_status;
    qvm_exec_result_release(&res);
    return status;
}

static int run_wait(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = { { "timeout", required_argument, NULL, 't' },
                                          CLI_COMMON_OPTIONS, { 0 } };
    int timeout = 600, c;
    while ((c = getopt_long(argc, argv, "t:", opts, NULL)) != -1) {
        if (c == 't') {
            if (parse_timeout(&cmd_wait, optarg, &timeout))
                return 1;
        } else if (!cli_common_option(cli, c, optarg)) {
            return cli_usage(&cmd_wait, "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage(&cmd_wait, "expected one VM name");
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    char *status = NULL;
    int r = qvm_guest_wait(&cli->ctx, argv[optind], timeout, &status, &err);
    cli_close(cli);
    if (cli->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(argv[optind]));
        json_object_object_add(o, "cloud_init_ok", json_object_new_boolean(r == 0));
        json_object_object_add(o, "status", status ? json_object_new_string(status) : NULL);
        cli_print_json(o);
    } else if (r == 0) {
        printf("%s\n", status);
    }
    free(status);
    return r < 0 ? cli_fail("waiting for guest", &err) : 0;
}

const struct cli_command cmd_exec = {
    .name = "exec",
    .run = run_exec,
    .summary = "run a command in a VM through the guest agent",
    .help =
        "Usage: qvm exec [--timeout SECONDS] NAME -- COMMAND [ARGS...]\n"
        "\n"
        "Runs COMMAND with ARGS in the guest through the QEMU guest agent (no network\n"
        "or SSH needed), waiting for the agent to answer if the guest is still\n"
        "booting. The command's stdout and stderr are printed on qvm's, and its exit\n"
        "status is qvm's exit status. No shell is involved: to use one, run\n"
        "'qvm exec NAME -- sh -c \"...\"'.\n"
        "\n"
        "Options:\n"
        "  -t, --timeout SECONDS  give up after this long (default 300)\n"
        "  --json                 print {exit_status, stdout, stderr} instead\n",
};

const struct cli_command cmd_wait = {
    .name = "wait",
    .run = run_wait,
    .summary = "wait until the guest agent answers and cloud-init is done",
    .help =
        "Usage: qvm wait [--timeout SECONDS] NAME\n"
        "\n"
        "Waits until the VM's guest agent answers and cloud-init has finished its\n"
        "first-boot work, then prints cloud-init's status. The exit status is 0 if\n"
        "cloud-init succeeded, 1 if it reported errors, the VM stopped, or the\n"
        "timeout passed.\n"
        "\n"
        "Options:\n"
        "  -t, --timeout SECONDS  give up after this long (default 600)\n",
};
