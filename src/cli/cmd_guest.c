/* cmd_guest.c - qvm exec|wait, through the guest agent, and qvm ssh */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/guest.h"
#include "core/monitor.h"
#include "core/ssh.h"
#include "util/subprocess.h"

#define STR(x) #x
#define XSTR(x) STR(x)

static int parse_timeout(const struct cli_command *cmd, const char *arg, int *ret)
{
    char *end;
    long t = strtol(arg, &end, 10);
    if (*end || t <= 0 || t > 86400)
        return cli_usage(cmd, "--timeout takes seconds (1..86400), not '%s'", arg);
    *ret = (int)t;
    return 0;
}

static void say_stderr(struct qvm_ui *ui, const char *msg)
{
    fprintf(stderr, "%s\n", msg);
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
    /* stdout is the guest command's alone. */
    if (cli->ui.say)
        cli->ui.say = say_stderr;
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
        fwrite(res.out, 1, res.out_len, stdout);
        fwrite(res.err, 1, res.err_len, stderr);
    }
    int status = res.exit_status;
    /* A status qvm cannot pass on (the agent had none to give) or output it
     * could not write is qvm's failure, not the guest command's success. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        qvm_err_errno(&err, errno ? errno : EIO, "cannot write the command's output");
        status = cli_fail("running command in guest", &err);
    } else if (status < 0 || status > 255) {
        qvm_err(&err, EPROTO, "the guest agent gave no usable exit status (%d)", status);
        status = cli_fail("running command in guest", &err);
    }
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

static int run_ssh(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = { { "user", required_argument, NULL, 'l' },
                                          { "print", no_argument, NULL, 'p' },
                                          CLI_COMMON_OPTIONS, { 0 } };
    const char *user = NULL;
    bool print = false;
    int c;
    while ((c = getopt_long(argc, argv, "+l:", opts, NULL)) != -1) {
        if (c == 'l')
            user = optarg;
        else if (c == 'p')
            print = true;
        else if (!cli_common_option(cli, c, optarg))
            return cli_usage(&cmd_ssh, "unknown option");
    }
    if (argc - optind < 1)
        return cli_usage(&cmd_ssh, "missing NAME");
    const char *name = argv[optind++];
    /* qvm's own long options may follow NAME too, up to "--". */
    while (optind < argc && strncmp(argv[optind], "--", 2) == 0 && argv[optind][2]) {
        const char *a = argv[optind];
        if (strcmp(a, "--print") == 0)
            print = true;
        else if (strcmp(a, "--json") == 0)
            cli->json = true;
        else if (strcmp(a, "--quiet") == 0)
            cli->quiet = true;
        else if (strncmp(a, "--user=", 7) == 0)
            user = a + 7;
        else if (strcmp(a, "--user") == 0 && optind + 1 < argc)
            user = argv[++optind];
        else
            return cli_usage(&cmd_ssh, "unknown option '%s' (ssh's options go after '--')", a);
        optind++;
    }
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    const char *home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : "/";
    }
    if (cli_open(cli))
        return 1;
    struct qvm_error err = { 0 };
    struct qvm_ssh_target t;
    int r = qvm_ssh_target(&cli->ctx, name, user, home, (const char *const *)argv + optind, &t,
                           &err);
    cli_close(cli);
    if (r < 0)
        return cli_fail("connecting to virtual machine", &err);
    if (t.note && !cli->quiet)
        fprintf(stderr, "warning: %s\n", t.note);
    int status = 0;
    if (print && cli->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "user", json_object_new_string(t.user));
        json_object_object_add(o, "port", json_object_new_int(t.port));
        json_object_object_add(o, "key", t.key ? json_object_new_string(t.key) : NULL);
        json_object_object_add(o, "known_hosts", json_object_new_string(t.known_hosts));
        json_object *a = json_object_new_array();
        for (size_t i = 0; t.argv[i]; i++)
            json_object_array_add(a, json_object_new_string(t.argv[i]));
        json_object_object_add(o, "argv", a);
        cli_print_json(o);
    } else if (print) {
        char *line = qvm_argv_to_string((const char *const *)t.argv);
        puts(line);
        free(line);
    } else {
        fflush(stdout);
        execvp(t.argv[0], t.argv);
        qvm_err_errno(&err, errno, "cannot run %s", t.argv[0]);
        status = cli_fail("connecting to virtual machine", &err);
    }
    qvm_ssh_target_release(&t);
    return status;
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
        "A VM that is not running, whose QEMU died, or that is paused is an error at\n"
        "once. The conversation with the agent holds the VM: another qvm command on\n"
        "it waits up to " XSTR(QVM_LOCK_TIMEOUT_S) " s (QVM_LOCK_TIMEOUT=SECONDS) and then fails naming\n"
        "this one, and this one waits for others the same way.\n"
        "\n"
        "Exit status: the command's (128+N if a signal N ended it); 1 with an\n"
        "'Error running command in guest: ...' line if qvm could not run it.\n"
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
        "first-boot work (/run/cloud-init/result.json exists), then prints\n"
        "cloud-init's status ('cloud-init status --long'). The exit status is 0 if\n"
        "cloud-init succeeded, 1 if it reported errors (the status is in the error\n"
        "message), the VM is not running, is paused or stopped meanwhile, or the\n"
        "timeout passed. Between its questions to the agent it lets go of the VM,\n"
        "so other qvm commands on it are not held up by a long wait.\n"
        "\n"
        "Options:\n"
        "  -t, --timeout SECONDS  give up after this long (default 600)\n",
};

const struct cli_command cmd_ssh = {
    .name = "ssh",
    .run = run_ssh,
    .summary = "log into a VM with ssh on its forwarded port",
    .help =
        "Usage: qvm ssh [--user USER] [--print] NAME [-- SSH-ARGS...]\n"
        "\n"
        "Runs the system's ssh (exec, no shell) to 127.0.0.1 on the host port\n"
        "forwarded to VM NAME's port 22, as the user its qvm file set up, with the\n"
        "key the qvm file installed:\n"
        "  user  the first user in the user-data's 'users' (\"default\" is the\n"
        "        image's default user, which gets the top-level ssh_authorized_keys\n"
        "        and meta-data public-keys) with a key matching one of\n"
        "        ~/.ssh/id_*.pub; else the first with a key; else the first. The\n"
        "        default user is system_info.default_user.name or 'user' from the\n"
        "        user-data, else the image's (debian, ubuntu, fedora, ... by\n"
        "        os-variant or image name).\n"
        "  key   -i with the private half of that matching ~/.ssh/id_*.pub, and\n"
        "        IdentitiesOnly=yes. Without a match, ssh uses its own defaults.\n"
        "  host  keys go to known_hosts in the VM's runtime directory\n"
        "        (StrictHostKeyChecking=accept-new), not to ~/.ssh/known_hosts: a\n"
        "        VM provisioned again on the same port does not trip ssh's alarm.\n"
        "SSH-ARGS follow the destination: options (ssh reads them there too) and\n"
        "a remote command. The exit status is ssh's.\n"
        "\n"
        "Options:\n"
        "  -l, --user USER  log in as USER instead\n"
        "  --print          print the ssh command line instead of running it\n"
        "                   (with --json: {user, port, key, known_hosts, argv})\n"
        "\n"
        "Examples:\n"
        "  qvm ssh web1\n"
        "  qvm ssh web1 -- -o BatchMode=yes systemctl is-system-running\n",
};
